// Compiles contracts/*.sol (the on-chain permissioning contracts) with the solc-js already
// installed for the JS tests and writes artifacts/<Name>.json for each deployable contract.
//
//   node genesis/permissioning/compile.mjs           compile, check, write artifacts
//   node genesis/permissioning/compile.mjs --check   compile, check, and fail if the committed
//                                                    artifacts differ from a fresh build
//
// Run `npm ci` in tests/js first if tests/js/node_modules is missing. Output is deterministic:
// pinned compiler version, fixed settings, no metadata hash.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifact, compileDir, fail, keccak256, signature, storageLayout, writeOrCheck } from '../solc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const contractsDir = path.join(here, 'contracts');
const artifactsDir = path.join(here, 'artifacts');

// The contracts the genesis generator deploys; everything else (Ingress, RulesBase,
// interfaces) is abstract.
const DEPLOYABLE = ['Admin', 'NodeIngress', 'AccountIngress', 'NodeRules', 'AccountRules'];

// Selectors the node, the Besu-era tooling (psc) and the genesis generator rely on.
const INGRESS_SELECTORS = {
  'RULES_CONTRACT()': '',
  'ADMIN_CONTRACT()': '',
  'getContractAddress(bytes32)': '0d2020dd',
  'setContractAddress(bytes32,address)': 'e001f841',
  'removeContract(bytes32)': 'a43e04d8',
  'isAuthorized(address)': 'fe9fbb80',
  'getContractVersion()': '8aa10435',
  'getAllContractKeys()': '',
  'emitRulesChangeEvent(bool)': '4dc3fefc',
};
const EXPECTED_SELECTORS = {
  NodeIngress: {
    ...INGRESS_SELECTORS,
    'connectionAllowed(string,string,uint16)': '45a59e5b',
  },
  AccountIngress: {
    ...INGRESS_SELECTORS,
    'transactionAllowed(address,address,uint256,uint256,uint256,bytes)': '936421d5',
  },
  NodeRules: {
    'connectionAllowed(string,string,uint16)': '45a59e5b',
    'enodePermitted(string,string,uint16)': '',
    'addEnode(string,string,uint16)': '39d6dd01',
    'removeEnode(string,string,uint16)': '28a4a078',
    'getSize()': 'de8fa431',
    'getByIndex(uint256)': '2d883a73',
    'enterReadOnly()': '',
    'exitReadOnly()': '',
    'isReadOnly()': '',
  },
  AccountRules: {
    'transactionAllowed(address,address,uint256,uint256,uint256,bytes)': '936421d5',
    'accountPermitted(address)': '',
    'addAccount(address)': 'e89b0e1e',
    'removeAccount(address)': 'c4740a95',
    'addAccounts(address[])': 'ac71abde',
    'getAccounts()': '8a48ac03',
    'getSize()': 'de8fa431',
    'enterReadOnly()': '',
    'exitReadOnly()': '',
    'isReadOnly()': '',
  },
  Admin: {
    'isAuthorized(address)': 'fe9fbb80',
    'addAdmin(address)': '70480275',
    'removeAdmin(address)': '1785f53c',
    'getAdmins()': '31ae450b',
    'addAdmins(address[])': '9c54df64',
  },
};

// Event topics; a value of '' only requires the event to exist.
const EXPECTED_EVENTS = {
  NodeIngress: {
    'NodePermissionsUpdated(bool)': '66120f934b66d52127e448f8e94c2460ea62821335e0dd18e89ed38a4a09b413',
    'RegistryUpdated(address,bytes32)': '',
  },
  AccountIngress: { 'AccountPermissionsUpdated(bool)': '', 'RegistryUpdated(address,bytes32)': '' },
  NodeRules: { 'NodeAdded(bool,string,string,uint16)': '', 'NodeRemoved(bool,string,string,uint16)': '' },
  AccountRules: { 'AccountAdded(bool,address)': '', 'AccountRemoved(bool,address)': '' },
  Admin: { 'AdminAdded(bool,address,string)': '', 'AdminRemoved(bool,address)': '' },
};

// The ingress storage layout a genesis alloc may seed (label, slot, type).
const INGRESS_LAYOUT = [
  ['rulesKey', '0', 't_bytes32'],
  ['adminKey', '1', 't_bytes32'],
  ['registry', '2', 't_mapping(t_bytes32,t_address)'],
  ['contractKeys', '3', 't_array(t_bytes32)dyn_storage'],
  ['indexOf', '4', 't_mapping(t_bytes32,t_uint256)'],
  ['version', '5', 't_uint256'],
];

function build() {
  const contracts = compileDir(contractsDir);
  const artifacts = {};
  for (const [file, byName] of Object.entries(contracts)) {
    for (const [name, c] of Object.entries(byName)) {
      if (!DEPLOYABLE.includes(name)) continue;
      if (artifacts[name]) fail(`contract ${name} defined twice`);
      artifacts[name] = { file, c };
    }
  }

  const result = {};
  for (const name of DEPLOYABLE) {
    if (!artifacts[name]) fail(`contract ${name} not found`);
    const { file, c } = artifacts[name];
    const ids = c.evm.methodIdentifiers;

    // Selectors: present, and equal to the expected value where one is given. Also recompute
    // each from the ABI with keccak to cross-check solc's table.
    for (const [sig, want] of Object.entries(EXPECTED_SELECTORS[name])) {
      const got = ids[sig];
      if (!got) fail(`${name}: missing function ${sig}`);
      if (want && got !== want) fail(`${name}: ${sig} has selector 0x${got}, expected 0x${want}`);
      if (keccak256(sig).slice(0, 8) !== got) fail(`${name}: solc selector for ${sig} disagrees with keccak`);
    }
    for (const [sig, want] of Object.entries(EXPECTED_EVENTS[name])) {
      const ev = c.abi.find((i) => i.type === 'event' && signature(i) === sig);
      if (!ev) fail(`${name}: missing event ${sig}`);
      if (ev.inputs.some((i) => i.indexed)) fail(`${name}: event ${sig} must have no indexed fields`);
      if (want && keccak256(sig) !== want) fail(`${name}: topic of ${sig} is 0x${keccak256(sig)}, expected 0x${want}`);
    }
    // Selector clashes between different functions cannot compile, but check anyway.
    const seen = new Set();
    for (const sel of Object.values(ids)) {
      if (seen.has(sel)) fail(`${name}: duplicate selector 0x${sel}`);
      seen.add(sel);
    }

    const layout = storageLayout(c);
    if (name === 'NodeIngress' || name === 'AccountIngress') {
      const got = layout.map((s) => [s.label, s.slot, s.type]);
      if (JSON.stringify(got) !== JSON.stringify(INGRESS_LAYOUT) || layout.some((s) => s.offset !== 0)) {
        fail(`${name}: storage layout differs from the genesis convention: ${JSON.stringify(got)}`);
      }
      // Must work when only its runtime code and storage are copied to 0x…9999/0x…8888.
      if (Object.keys(c.evm.deployedBytecode.immutableReferences || {}).length) {
        fail(`${name}: must not use immutables`);
      }
    }

    result[name] = artifact(name, file, c);
  }
  return result;
}

const check = process.argv.includes('--check');
const outputs = {};
for (const [name, a] of Object.entries(build())) {
  outputs[path.join(artifactsDir, `${name}.json`)] = JSON.stringify(a, null, 2) + '\n';
}
writeOrCheck(outputs, check, 'node genesis/permissioning/compile.mjs');
if (check) console.log('artifacts up to date');
