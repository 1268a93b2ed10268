// viem against a dev node: deploy, write, read events, revert reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, createWalletClient, defineChain, http, parseEther, parseEventLogs } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { compile } from './compile.js';
import { startNode, DEV_KEYS } from './node.js';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

test('viem deploys, transfers, parses events and reports a revert reason', async () => {
  const chain = defineChain({
    id: 1337,
    name: 'consort dev',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [node.http] } },
  });
  const transport = http(node.http);
  const client = createPublicClient({ chain, transport, pollingInterval: 200 });
  const owner = privateKeyToAccount(DEV_KEYS[0]);
  const other = privateKeyToAccount(DEV_KEYS[1]);
  const wallet = createWalletClient({ chain, transport, account: owner });
  const { abi, bytecode } = compile('Token.sol');

  const deployHash = await wallet.deployContract({ abi, bytecode, args: ['Viem', 'VIE', parseEther('100')] });
  const deployed = await client.waitForTransactionReceipt({ hash: deployHash });
  assert.equal(deployed.status, 'success');
  const address = deployed.contractAddress;
  assert.equal(await client.readContract({ address, abi, functionName: 'symbol' }), 'VIE');

  const hash = await wallet.writeContract({ address, abi, functionName: 'transfer', args: [other.address, 7n] });
  const receipt = await client.waitForTransactionReceipt({ hash });
  const [transfer] = parseEventLogs({ abi, logs: receipt.logs, eventName: 'Transfer' });
  assert.equal(transfer.args.to, other.address);
  assert.equal(transfer.args.value, 7n);
  const events = await client.getContractEvents({ address, abi, eventName: 'Transfer', fromBlock: 0n });
  assert.equal(events.length, 2);

  await assert.rejects(
    client.simulateContract({ address, abi, functionName: 'transfer', args: [owner.address, 8n], account: other }),
    (e) => /insufficient balance/.test(e.shortMessage ?? e.message),
  );
});
