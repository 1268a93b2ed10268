// Compiles tests/contracts/*.sol with solc-js. `node compile.js --write` refreshes the
// artifacts the Rust end-to-end tests read (tests/contracts/<Name>.json).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

const here = path.dirname(fileURLToPath(import.meta.url));
export const contractsDir = path.join(here, '..', 'contracts');

export function compile(file) {
  const source = fs.readFileSync(path.join(contractsDir, file), 'utf8');
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: source } },
    settings: {
      evmVersion: 'cancun',
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const [name, contract] = Object.entries(output.contracts[file])[0];
  return { name, abi: contract.abi, bytecode: '0x' + contract.evm.bytecode.object };
}

if (process.argv.includes('--write')) {
  for (const file of fs.readdirSync(contractsDir).filter((f) => f.endsWith('.sol'))) {
    const artifact = compile(file);
    const out = path.join(contractsDir, `${artifact.name}.json`);
    fs.writeFileSync(out, JSON.stringify({ abi: artifact.abi, bytecode: artifact.bytecode }, null, 2) + '\n');
    console.log(`wrote ${out}`);
  }
}
