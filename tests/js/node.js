// Starts a consort dev node on an ephemeral port and stops it after the tests.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DEV_KEYS = [
  '0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63',
  '0xc87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3',
];

export async function startNode() {
  const bin = process.env.CONSORT_BIN;
  if (!bin) throw new Error('set CONSORT_BIN to the consort binary (make test does)');
  const dataPath = fs.mkdtempSync(path.join(os.tmpdir(), 'consort-js-'));
  const child = spawn(bin, [
    '--network=dev', `--data-path=${dataPath}`,
    '--rpc-http-enabled', '--rpc-http-port=0', '--rpc-http-api=ETH,NET,WEB3,TXPOOL,DEBUG',
    '--rpc-ws-enabled', '--rpc-ws-port=0', '--p2p-port=0', '--p2p-interface=127.0.0.1',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start:\n${log}`)), 60000);
    const found = {};
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const http = log.match(/JSON-RPC HTTP on (http:\/\/[\d.:]+)/);
      const ws = log.match(/JSON-RPC WebSocket on (ws:\/\/[\d.:]+)/);
      if (http && ws && !found.done) {
        found.done = true;
        clearTimeout(timer);
        resolve({ http: http[1], ws: ws[1] });
      }
    });
    child.on('exit', (code) => reject(new Error(`node exited with ${code}:\n${log}`)));
  });
  return {
    ...urls,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fs.rmSync(dataPath, { recursive: true, force: true });
    },
  };
}
