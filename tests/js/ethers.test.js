// ethers v6 against a dev node: deploy the ERC-20, transfer, read events, surface a revert reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContractFactory, JsonRpcProvider, Wallet, WebSocketProvider, parseEther } from 'ethers';
import { compile } from './compile.js';
import { startNode, DEV_KEYS } from './node.js';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

test('ethers deploys an ERC-20, transfers, reads Transfer events and a revert reason', async () => {
  // ethers answers an identical request from a 250 ms cache; with blocks that fast, the
  // deploy's pending nonce (0) would be reused for the transfer. Ask the node every time.
  const provider = new JsonRpcProvider(node.http, undefined, { pollingInterval: 200, cacheTimeout: -1 });
  const network = await provider.getNetwork();
  assert.equal(network.chainId, 1337n);
  const owner = new Wallet(DEV_KEYS[0], provider);
  const other = new Wallet(DEV_KEYS[1], provider);
  const { abi, bytecode } = compile('Token.sol');

  const token = await new ContractFactory(abi, bytecode, owner).deploy('Consort', 'CNS', parseEther('1000'));
  await token.waitForDeployment();
  assert.equal(await token.symbol(), 'CNS');
  assert.equal(await token.balanceOf(owner.address), parseEther('1000'));

  const tx = await token.transfer(other.address, parseEther('5'));
  const receipt = await tx.wait();
  assert.equal(receipt.status, 1);
  const transfer = receipt.logs.map((l) => token.interface.parseLog(l)).find((l) => l?.name === 'Transfer');
  assert.equal(transfer.args.from, owner.address);
  assert.equal(transfer.args.to, other.address);
  assert.equal(transfer.args.value, parseEther('5'));
  assert.equal(await token.balanceOf(other.address), parseEther('5'));

  const events = await token.queryFilter(token.filters.Transfer(), 0, 'latest');
  assert.equal(events.length, 2, 'mint and transfer');

  await assert.rejects(
    token.connect(other).transfer(owner.address, parseEther('6')),
    (e) => e.code === 'CALL_EXCEPTION' && e.reason === 'insufficient balance',
  );
});

test('ethers over WebSocket sees new blocks', async () => {
  const ws = new WebSocketProvider(node.ws);
  try {
    const seen = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no block within 30 s')), 30000);
      ws.once('block', (n) => { clearTimeout(timer); resolve(n); });
      // A transaction makes the dev chain produce a block within its one-second period.
      const wallet = new Wallet(DEV_KEYS[1], ws);
      wallet.sendTransaction({ to: wallet.address, value: 1n }).catch(reject);
    });
    assert.ok(seen > 0);
  } finally {
    await ws.destroy();
  }
});
