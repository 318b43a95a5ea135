/**
 * The JavaScript client against a real sandbox daemon: sales, an error answer, a QR sale paid
 * by the "customer", auth by message, and a dropped connection replayed once, in order.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { ConnectionLost, EcrClient, EcrError, type Notification } from "../src/index.js";
import { Relay, startSandbox, type Sandbox } from "./sandbox.js";

let sandbox: Sandbox;

before(async () => { sandbox = await startSandbox(); });
after(async () => { await sandbox.stop(); });

async function until(ecr: EcrClient, orderNo: string, state: string): Promise<void> {
  for (let i = 0; i < 300; i++) {  // bounded: the simulated world answers within seconds
    if ((await ecr.status(orderNo)).state === state) return;
    await sleep(50);
  }
  throw new Error(`${orderNo} never became ${state}`);
}

test("a card sale is approved, a declined card is a transaction, not an error", async () => {
  const ecr = await EcrClient.connect(sandbox.url, sandbox.token);
  try {
    const approved = await ecr.sale({ terminal: "lane-1", orderNo: "JS1", amount: "12.00",
                                      currency: "USD" });
    assert.equal(approved.state, "approved");
    assert.equal(approved.amount, "12.00");
    const declined = await ecr.sale({ terminal: "lane-1", orderNo: "JS2", amount: "12.05",
                                      currency: "USD" });
    assert.equal(declined.state, "declined");
    // the same order_no and parameters again: the same transaction, not a second payment
    const again = await ecr.sale({ terminal: "lane-1", orderNo: "JS1", amount: "12.00",
                                   currency: "USD" });
    assert.equal(again.provider_ref, approved.provider_ref);
  } finally {
    await ecr.close();
  }
});

test("an error answer carries its code, reason and field", async () => {
  const ecr = await EcrClient.connect(sandbox.url, sandbox.token);
  try {
    await assert.rejects(
      ecr.sale({ terminal: "lane-1", orderNo: "JS3", amount: "1.001", currency: "USD" }),
      (error: unknown) => error instanceof EcrError && error.code === -32602 &&
        error.reason === "invalid_params" && error.field === "amount");
  } finally {
    await ecr.close();
  }
});

test("a QR sale shows its deeplink; when the customer pays, the register hears it", async () => {
  const ecr = await EcrClient.connect(sandbox.url, sandbox.token, { header: false });
  try {
    const txn = await ecr.qrSale({ orderNo: "JSQ1", amount: "8.50", currency: "CAD",
                                   subject: "Coffee", wait: false });
    assert.ok(txn.qr?.deeplink.startsWith("https://"));
    // the customer display's sandbox button: the simulated wallet pays
    const paid = await fetch(`${sandbox.http}/display/lane-1/sandbox-pay`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ order_no: "JSQ1" }),
    });
    assert.ok(paid.ok);
    for (let i = 0; i < 50; i++) {  // bounded: a few state changes
      const note = await ecr.nextNotification(20_000);
      if (note.method === "transaction.updated" &&
          note.params.transaction.order_no === "JSQ1" &&
          note.params.transaction.state === "approved") return;
    }
    assert.fail("no approval was notified");
  } finally {
    await ecr.close();
  }
});

test("a dropped connection is replayed: each event once, in order", async () => {
  const relay = new Relay(Number(new URL(sandbox.url).port));
  const url = await relay.start();
  const ecr = await EcrClient.connect(url, sandbox.token,
                                      { reconnect: true, lastSeq: 0, backoffMs: [50, 200] });
  const direct = await EcrClient.connect(sandbox.url, sandbox.token);
  const seen: Notification[] = [];
  try {
    // replayed from 0 at connect: everything this register saw so far, then live
    // ".45": the simulated card holder is slow, so the sale ends while we are away
    const txn = await ecr.sale({ terminal: "lane-1", orderNo: "JSR1", amount: "10.45",
                                 currency: "USD", wait: false });
    assert.ok(["pending", "in_progress"].includes(txn.state));
    relay.refusing = true;
    relay.cut();
    await until(direct, "JSR1", "approved");  // meanwhile, without our client
    const waiting = ecr.status("JSR1");  // waits for the reconnect
    relay.refusing = false;
    for (let i = 0; i < 500; i++) {  // bounded: the replay ends with JSR1's approval
      const note = await ecr.nextNotification(20_000);
      seen.push(note);
      if (note.method === "transaction.updated" &&
          note.params.transaction.order_no === "JSR1" &&
          note.params.transaction.state === "approved") break;
    }
    assert.equal((await waiting).state, "approved");
    assert.ok(ecr.reconnects >= 1);
    const seqs = seen.map((n) => n.params.seq as number);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), "once each, in order");
    const approvals = seen.filter((n) => n.method === "transaction.updated" &&
      n.params.transaction.order_no === "JSR1" && n.params.transaction.state === "approved");
    assert.equal(approvals.length, 1);
  } finally {
    await ecr.close();
    await direct.close();
    await relay.stop();
  }
});

test("without reconnect, a call after the connection went rejects with ConnectionLost",
     async () => {
  const relay = new Relay(Number(new URL(sandbox.url).port));
  const url = await relay.start();
  const ecr = await EcrClient.connect(url, sandbox.token);
  try {
    await ecr.ping();
    relay.cut();
    for (let i = 0; i < 100 && ecr.connected; i++) await sleep(20);
    await assert.rejects(ecr.ping(), ConnectionLost);
  } finally {
    await ecr.close();
    await relay.stop();
  }
});
