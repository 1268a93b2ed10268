// What the genesis contract builds share (genesis/permissioning, genesis/validator-contract):
// the pinned solc-js of tests/js, fixed settings, compiling a contracts directory, the artifact
// format, and writing outputs or checking that the committed ones are current.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireFromTests = createRequire(path.join(repo, 'tests', 'js', 'package.json'));
const solc = requireFromTests('solc');
export const { keccak256 } = requireFromTests('js-sha3');

const SOLC_VERSION = '0.8.30';

export const SETTINGS = {
  evmVersion: 'paris', // no PUSH0/MCOPY/transient storage: runs on any fork from London on
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: 'none' },
  outputSelection: {
    '*': {
      '*': [
        'abi',
        'evm.bytecode.object',
        'evm.deployedBytecode.object',
        'evm.deployedBytecode.immutableReferences',
        'evm.methodIdentifiers',
        'storageLayout',
      ],
    },
  },
};

export function fail(msg) {
  console.error(`compile.mjs: ${msg}`);
  process.exit(1);
}

function canonicalType(p) {
  if (p.type.startsWith('tuple')) {
    return `(${p.components.map(canonicalType).join(',')})${p.type.slice('tuple'.length)}`;
  }
  return p.type;
}

/// `name(type,...)` of an ABI function or event.
export function signature(item) {
  return `${item.name}(${item.inputs.map(canonicalType).join(',')})`;
}

/// Compiles every .sol file of `contractsDir`; fails on any error or warning. Returns solc's
/// `contracts` output (file → name → contract).
export function compileDir(contractsDir) {
  if (solc.version().split('+')[0] !== SOLC_VERSION) {
    fail(`expected solc ${SOLC_VERSION}, found ${solc.version()}`);
  }
  const files = fs.readdirSync(contractsDir).filter((f) => f.endsWith('.sol')).sort();
  const sources = {};
  for (const f of files) sources[f] = { content: fs.readFileSync(path.join(contractsDir, f), 'utf8') };
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) console.error(d.formattedMessage);
  if (diagnostics.some((d) => d.severity === 'error')) fail('compilation failed');
  if (diagnostics.length) fail('compiler warnings are not allowed');
  return output.contracts;
}

/// The storage layout of a compiled contract: label, slot, offset, type per variable.
export function storageLayout(c) {
  return c.storageLayout.storage.map((s) => ({ label: s.label, slot: s.slot, offset: s.offset, type: s.type }));
}

/// The committed artifact of contract `name` compiled from `file`.
export function artifact(name, file, c) {
  return {
    contractName: name,
    sourceName: file,
    compiler: { version: solc.version(), settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer, metadata: SETTINGS.metadata } },
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    methodIdentifiers: Object.fromEntries(Object.entries(c.evm.methodIdentifiers).map(([k, v]) => [k, '0x' + v])),
    storageLayout: storageLayout(c),
  };
}

/// Writes `outputs` (path → text), or with `check` reports those whose committed text
/// differs and fails, naming `rerun` as the command that brings them up to date.
export function writeOrCheck(outputs, check, rerun) {
  let stale = false;
  for (const [out, text] of Object.entries(outputs)) {
    if (check) {
      const old = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : null;
      if (old !== text) {
        console.error(`stale: ${path.relative(repo, out)}`);
        stale = true;
      }
    } else {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, text);
      console.log(`wrote ${path.relative(repo, out)}`);
    }
  }
  if (stale) fail(`outputs are out of date; run ${rerun}`);
}
