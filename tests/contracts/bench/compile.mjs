// Compiles the load generator's contracts (consort-bench) into artifacts next to them.
// `node tests/contracts/bench/compile.mjs` writes them; `--check` fails if they are stale.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifact, compileDir, writeOrCheck } from '../../../genesis/solc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outputs = {};
for (const [file, contracts] of Object.entries(compileDir(here))) {
  for (const [name, c] of Object.entries(contracts)) {
    outputs[path.join(here, `${name}.json`)] = JSON.stringify(artifact(name, file, c), null, 2) + '\n';
  }
}
writeOrCheck(outputs, process.argv.includes('--check'), 'node tests/contracts/bench/compile.mjs');
