// Compiles contracts/*.sol (the QBFT validator contracts) with the solc-js already installed for
// the JS tests, writes artifacts/<Name>.json, and derives the validator-contract genesis
// templates of genesis/qbft-4 from genesis/qbft-4/genesis.json.
//
//   node genesis/validator-contract/compile.mjs             compile, check, write artifacts
//   node genesis/validator-contract/compile.mjs --genesis   also write the genesis templates
//   node genesis/validator-contract/compile.mjs --check     compile, check, and fail if the committed
//                                                           artifacts or genesis templates differ
//                                                           from a fresh build
//
// Run `npm ci` in tests/js first if tests/js/node_modules is missing. Output is deterministic:
// pinned compiler version, fixed settings, no metadata hash, sorted storage keys.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifact, compileDir, fail, keccak256, repo, signature, storageLayout, writeOrCheck } from '../solc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const contractsDir = path.join(here, 'contracts');
const artifactsDir = path.join(here, 'artifacts');
const qbft4Dir = path.join(repo, 'genesis', 'qbft-4');

const DEPLOYABLE = ['ValidatorSet', 'MinimalValidatorSet'];

// Every external function of each contract with its selector. The set must match exactly: a
// function added or removed in the source has to be added here (and to the README) too.
const EXPECTED_SELECTORS = {
  ValidatorSet: {
    'getValidators()': 'b7ab4db5',
    'isValidator(address)': 'facd743b',
    'addValidator(address)': '4d238c8e',
    'removeValidator(address)': '40a141ff',
    'isAdmin(address)': '24d7806c',
    'addAdmin(address)': '70480275',
    'removeAdmin(address)': '1785f53c',
    'adminCount()': '2b7832b3',
  },
  MinimalValidatorSet: {
    'getValidators()': 'b7ab4db5',
  },
};

// Event topics (keccak256 of the signature), each with one indexed address.
const EXPECTED_EVENTS = {
  ValidatorSet: {
    'ValidatorAdded(address)': 'e366c1c0452ed8eec96861e9e54141ebff23c9ec89fe27b996b45f5ec3884987',
    'ValidatorRemoved(address)': 'e1434e25d6611e0db941968fdc97811c982ac1602e951637d206f5fdda9dd8f1',
    'AdminAdded(address)': '44d6d25963f097ad14f29f06854a01f575648a1ef82f30e562ccd3889717e339',
    'AdminRemoved(address)': 'a3b62bc36326052d97ea62d63c3d60308ed4c3ea8ac079dd8499f1e9c4f80c0f',
  },
  MinimalValidatorSet: {},
};

// The storage layout genesis files preload (label, slot, type); all at offset 0.
const EXPECTED_LAYOUT = {
  ValidatorSet: [
    ['validators', '0', 't_array(t_address)dyn_storage'],
    ['admins', '1', 't_mapping(t_address,t_bool)'],
    ['adminCount', '2', 't_uint256'],
    ['indexOf', '3', 't_mapping(t_address,t_uint256)'],
  ],
  MinimalValidatorSet: [['validators', '0', 't_array(t_address)dyn_storage']],
};

// Where the genesis templates place the contract, and who administers it.
const CONTRACT_ADDRESS = '0x0000000000000000000000000000000000007777';
const ADMIN = '0xfe3b557e8fb62b89f4916b721be55ceb828dbd73'; // dev account 1 (public key, dev only)
// QBFT extraData with no validators, RLP [32 zero bytes, [], [], round 0, []]: in contract mode
// the validators come from the contract, not from the header.
const EMPTY_EXTRA_DATA = '0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0';

function build() {
  const contracts = compileDir(contractsDir);
  const found = {};
  for (const [file, byName] of Object.entries(contracts)) {
    for (const [name, c] of Object.entries(byName)) {
      if (!DEPLOYABLE.includes(name)) fail(`unexpected contract ${name} in ${file}`);
      if (found[name]) fail(`contract ${name} defined twice`);
      found[name] = { file, c };
    }
  }

  const result = {};
  for (const name of DEPLOYABLE) {
    if (!found[name]) fail(`contract ${name} not found`);
    const { file, c } = found[name];
    const ids = c.evm.methodIdentifiers;

    // Selectors: exactly the expected set, each equal to the expected value, and each also
    // recomputed from the signature with keccak to cross-check solc's table.
    const want = EXPECTED_SELECTORS[name];
    for (const sig of Object.keys(ids)) {
      if (!(sig in want)) fail(`${name}: unexpected function ${sig} (0x${ids[sig]}); list it in compile.mjs`);
    }
    for (const [sig, sel] of Object.entries(want)) {
      const got = ids[sig];
      if (!got) fail(`${name}: missing function ${sig}`);
      if (got !== sel) fail(`${name}: ${sig} has selector 0x${got}, expected 0x${sel}`);
      if (keccak256(sig).slice(0, 8) !== got) fail(`${name}: solc selector for ${sig} disagrees with keccak`);
    }
    const seen = new Set();
    for (const sel of Object.values(ids)) {
      if (seen.has(sel)) fail(`${name}: duplicate selector 0x${sel}`);
      seen.add(sel);
    }

    const events = c.abi.filter((i) => i.type === 'event').map(signature);
    const wantEvents = EXPECTED_EVENTS[name];
    for (const sig of events) {
      if (!(sig in wantEvents)) fail(`${name}: unexpected event ${sig}; list it in compile.mjs`);
    }
    for (const [sig, topic] of Object.entries(wantEvents)) {
      const ev = c.abi.find((i) => i.type === 'event' && signature(i) === sig);
      if (!ev) fail(`${name}: missing event ${sig}`);
      if (ev.inputs.length !== 1 || !ev.inputs[0].indexed) fail(`${name}: event ${sig} must have one indexed field`);
      if (keccak256(sig) !== topic) fail(`${name}: topic of ${sig} is 0x${keccak256(sig)}, expected 0x${topic}`);
    }

    // The layout genesis files preload. Checked against solc's storageLayout output.
    const layout = storageLayout(c);
    const got = layout.map((s) => [s.label, s.slot, s.type]);
    if (JSON.stringify(got) !== JSON.stringify(EXPECTED_LAYOUT[name]) || layout.some((s) => s.offset !== 0)) {
      fail(`${name}: storage layout differs from the documented one: ${JSON.stringify(got)}`);
    }
    // The genesis places only the runtime code at 0x…7777, so no constructor-set immutables.
    if (Object.keys(c.evm.deployedBytecode.immutableReferences || {}).length) {
      fail(`${name}: must not use immutables`);
    }

    result[name] = artifact(name, file, c);
  }
  return result;
}

// ---- genesis templates ----

function hexToBytes(hex) {
  const h = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (h.length % 2 || /[^0-9a-fA-F]/.test(h)) fail(`bad hex: ${hex}`);
  return Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16));
}

const word = (n) => '0x' + BigInt(n).toString(16).padStart(64, '0');
const addressWord = (a) => '0x' + a.slice(2).toLowerCase().padStart(64, '0');
const keccakWord = (...words) => '0x' + keccak256(Uint8Array.from(words.flatMap((w) => [...hexToBytes(w)])));
const WORD_MOD = 1n << 256n;

/// Storage of a dynamic array of addresses at `slot`: length at the slot, element i at
/// keccak256(slot) + i, each address right-aligned in its word.
function arrayStorage(slot, addresses) {
  const base = BigInt(keccakWord(word(slot)));
  const storage = { [word(slot)]: word(addresses.length) };
  addresses.forEach((a, i) => {
    storage[word((base + BigInt(i)) % WORD_MOD)] = addressWord(a);
  });
  return storage;
}

/// Slot of mapping entry `map[key]` for a mapping at `slot` with an address key:
/// keccak256(pad32(key) ++ uint256(slot)).
const mappingSlot = (slot, key) => keccakWord(addressWord(key), word(slot));

function validatorSetStorage(validators, admins) {
  const storage = arrayStorage(0, validators); // slot 0: validators
  for (const a of admins) storage[mappingSlot(1, a)] = word(1); // slot 1: admins[a] = true
  storage[word(2)] = word(admins.length); // slot 2: adminCount
  validators.forEach((v, i) => {
    storage[mappingSlot(3, v)] = word(i + 1); // slot 3: indexOf[v], 1-based
  });
  return storage;
}

const sortKeys = (storage) => Object.fromEntries(Object.entries(storage).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// Minimal RLP decoding, enough for the QBFT extraData of the source genesis.
function rlpDecode(bytes) {
  function item(pos) {
    const b = bytes[pos];
    const long = (lenOfLen, p) => {
      let n = 0;
      for (let i = 0; i < lenOfLen; i++) n = n * 256 + bytes[p + i];
      return n;
    };
    if (b < 0x80) return [bytes.slice(pos, pos + 1), pos + 1];
    if (b <= 0xb7) return [bytes.slice(pos + 1, pos + 1 + b - 0x80), pos + 1 + b - 0x80];
    if (b <= 0xbf) {
      const n = long(b - 0xb7, pos + 1);
      const start = pos + 1 + b - 0xb7;
      return [bytes.slice(start, start + n), start + n];
    }
    let start, end;
    if (b <= 0xf7) {
      start = pos + 1;
      end = start + b - 0xc0;
    } else {
      start = pos + 1 + b - 0xf7;
      end = start + long(b - 0xf7, pos + 1);
    }
    const list = [];
    let p = start;
    while (p < end) {
      const [v, next] = item(p);
      list.push(v);
      p = next;
    }
    if (p !== end) fail('bad RLP');
    return [list, end];
  }
  const [v, end] = item(0);
  if (end !== bytes.length) fail('trailing bytes after RLP item');
  return v;
}

const bytesToHex = (b) => '0x' + Buffer.from(b).toString('hex');

/// The qbft-4 validators: addresses of validator<N>/key.pub, checked against the validators in
/// the source genesis's extraData, sorted ascending.
function qbft4Validators(source) {
  const fromKeys = [1, 2, 3, 4].map((n) => {
    const pub = fs.readFileSync(path.join(qbft4Dir, `validator${n}`, 'key.pub'), 'utf8').trim();
    const bytes = hexToBytes(pub);
    if (bytes.length !== 64) fail(`validator${n}/key.pub: expected a 64-byte public key`);
    return '0x' + keccak256(bytes).slice(24);
  });
  const extra = rlpDecode(hexToBytes(source.extraData));
  if (!Array.isArray(extra) || extra.length !== 5 || !Array.isArray(extra[1])) fail('genesis.json: unexpected extraData');
  const fromExtra = extra[1].map(bytesToHex);
  const sorted = [...fromKeys].sort();
  if (JSON.stringify([...fromExtra].sort()) !== JSON.stringify(sorted)) {
    fail(`genesis.json extraData validators ${fromExtra} differ from validator*/key.pub ${fromKeys}`);
  }
  return sorted;
}

function checkEmptyExtraData() {
  const e = rlpDecode(hexToBytes(EMPTY_EXTRA_DATA));
  const ok =
    Array.isArray(e) && e.length === 5 && !Array.isArray(e[0]) && e[0].length === 32 && e[0].every((b) => b === 0) &&
    Array.isArray(e[1]) && e[1].length === 0 && Array.isArray(e[2]) && e[2].length === 0 &&
    !Array.isArray(e[3]) && e[3].length === 0 && Array.isArray(e[4]) && e[4].length === 0;
  if (!ok) fail('EMPTY_EXTRA_DATA is not RLP [zero32, [], [], 0, []]');
}

function genesisTemplates(built) {
  const sourcePath = path.join(qbft4Dir, 'genesis.json');
  const source = JSON.parse(fs.readFileSync(sourcePath, 'utf8'));
  const validators = qbft4Validators(source);
  checkEmptyExtraData();
  const allocKey = CONTRACT_ADDRESS.slice(2);
  if (Object.keys(source.alloc).some((k) => k.toLowerCase().replace(/^0x/, '') === allocKey)) {
    fail(`genesis.json already has an account at ${CONTRACT_ADDRESS}`);
  }

  function template(comment, contractName, accountComment, storage) {
    const g = structuredClone(source);
    g._comment = comment;
    g.config.qbft.validatorcontractaddress = CONTRACT_ADDRESS;
    g.extraData = EMPTY_EXTRA_DATA;
    g.alloc[allocKey] = {
      comment: accountComment,
      balance: '0x0',
      code: built[contractName].deployedBytecode,
      storage: sortKeys(storage),
    };
    return JSON.stringify(g, null, 2) + '\n';
  }

  const devOnly =
    'The validator keys in validator*/key and the funded accounts are PUBLIC development keys: never use them on a real network.';
  return {
    [path.join(qbft4Dir, 'validator-contract-genesis.json')]: template(
      `The qbft-4 network in QBFT validator-contract mode from block 0: the validators of each block are getValidators() of the ValidatorSet contract at ${CONTRACT_ADDRESS} (genesis/validator-contract), preloaded with the four qbft-4 validators and with dev account 1 as its admin. Generated by node genesis/validator-contract/compile.mjs --genesis. ${devOnly}`,
      'ValidatorSet',
      `ValidatorSet (genesis/validator-contract); preloaded storage: slot 0 validators = the 4 qbft-4 validators (ascending), slot 1 admins[${ADMIN}] = true, slot 2 adminCount = 1, slot 3 indexOf[validator] = 1-based position`,
      validatorSetStorage(validators, [ADMIN]),
    ),
    [path.join(qbft4Dir, 'besu-validator-contract-genesis.json')]: template(
      `The qbft-4 network in QBFT validator-contract mode from block 0, with a Besu-example-style contract: MinimalValidatorSet (genesis/validator-contract) at ${CONTRACT_ADDRESS}, only its slot 0 validator array preloaded, no admin and no way to change the set. Generated by node genesis/validator-contract/compile.mjs --genesis. ${devOnly}`,
      'MinimalValidatorSet',
      'MinimalValidatorSet (genesis/validator-contract); preloaded storage: slot 0 = 4 (array length), keccak256(uint256(0)) + i = validator i (the 4 qbft-4 validators, ascending)',
      arrayStorage(0, validators),
    ),
  };
}

// ---- main ----

const check = process.argv.includes('--check');
const writeGenesis = process.argv.includes('--genesis');
const built = build();

for (const [name, a] of Object.entries(built)) {
  const sels = Object.entries(a.methodIdentifiers).map(([sig, sel]) => `${sel} ${sig}`).join(', ');
  console.log(`${name}: ${sels}`);
}

const outputs = {};
for (const [name, artifact] of Object.entries(built)) {
  outputs[path.join(artifactsDir, `${name}.json`)] = JSON.stringify(artifact, null, 2) + '\n';
}
if (check || writeGenesis) Object.assign(outputs, genesisTemplates(built));

writeOrCheck(outputs, check, 'node genesis/validator-contract/compile.mjs --genesis');
if (check) console.log('artifacts and genesis templates up to date');
