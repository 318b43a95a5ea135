/**
 * The register client of posbridge: the ECR protocol (docs/ecr-protocol.md) as typed calls,
 * for Node.js (the `ws` package). The same API as the Python client (posbridge/client.py):
 *
 * ```ts
 * import { EcrClient } from "posbridge-client";
 *
 * const ecr = await EcrClient.connect("ws://127.0.0.1:8765/ecr", token,
 *                                     { reconnect: true, lastSeq: storedSeq });
 * const txn = await ecr.sale({ terminal: "lane-1", orderNo: "L1-0042", amount: "12.34",
 *                              currency: "USD" });
 * for await (const note of ecr.notifications()) { handle(note); store(note.params.seq); }
 * ```
 *
 * Amounts are decimal strings ("12.34"), never numbers. Answers are matched to requests by
 * id, so calls may run concurrently. Results are the protocol's objects as plain objects
 * (snake_case, as on the wire); an error answer rejects with {@link EcrError}.
 *
 * Notifications are delivered once each, in `seq` order: one whose `seq` is not above the
 * highest delivered ({@link EcrClient.lastSeq}) is dropped, so live and replayed events may
 * overlap harmlessly. With `reconnect: true` the client follows the protocol's rule "After a
 * disconnect or a crash": when the connection drops it reconnects with a back-off (0.5 s
 * doubling to 10 s), authenticates, and calls `events.replay` from `lastSeq` until the answer
 * is empty; live notifications arriving meanwhile are held and delivered after the replay.
 * `lastSeq` given to {@link EcrClient.connect} (the highest `seq` your register processed,
 * kept durably; 0 on its first run) replays from there at once; with `reconnect` it defaults
 * to 0. Without either (one-shot tools) nothing is replayed.
 *
 * A request in flight when the connection drops rejects with {@link ConnectionLost}: it may
 * or may not have reached the bridge, so send it again with the same `order_no` (always
 * safe). Requests made while reconnecting wait for the new connection (within their timeout).
 * A refused token ends the client: every call then rejects with {@link ConnectionLost}.
 */

import WebSocket from "ws";

// -- the protocol's objects ------------------------------------------------------------------

export interface Card { brand: string | null; last4: string | null }
export interface QrCode { deeplink: string; expires_at: string }
export interface TransactionError { code: string; message: string; provider_code: string | null }

/** A payment, void or refund (docs/ecr-protocol.md, "Objects"). */
export interface Transaction {
  order_no: string;
  kind: string;
  provider: string;
  terminal: string | null;
  amount: string;
  tip: string;
  currency: string;
  state: string;
  provider_ref: string | null;
  auth_no: string | null;
  card: Card | null;
  qr: QrCode | null;
  orig_order_no: string | null;
  refunded_amount: string;
  batch_no: string | null;
  error: TransactionError | null;
  created_at: string;
  updated_at: string;
  description?: string;
  subject?: string;
}

export interface TransactionPage { items: Transaction[]; next_cursor: string | null }

export interface Batch {
  terminal: string;
  batch_no: string;
  state: string;
  opened_at: string;
  closed_at: string | null;
  count: number;
  totals: Record<string, Record<string, unknown>>;
  provider_result: Record<string, unknown> | null;
  discrepancy: Record<string, unknown>;
}

export interface Terminal {
  sn: string;
  name: string;
  provider: string;
  online: boolean | null;
  open_batch: Record<string, unknown>;
}

/** One answer item of `events.replay`. */
export interface Event {
  seq: number;
  type: string;
  method?: string;
  params: Record<string, unknown> & { seq?: number };
  at: string;
}

/** A notification as delivered (live, or made from a replayed {@link Event}). */
export interface Notification {
  jsonrpc: "2.0";
  method: string;
  params: Record<string, any> & { seq?: number };
}

// -- errors ------------------------------------------------------------------------------------

/** A JSON-RPC error answer from the bridge. */
export class EcrError extends Error {
  constructor(readonly code: number, message: string,
              readonly data: Record<string, unknown> = {}) {
    super(`${code} ${message}`);
    this.name = "EcrError";
  }

  /** The machine-readable `data.reason` (`invalid_params`, `forbidden`, ...). */
  get reason(): string | undefined {
    return typeof this.data.reason === "string" ? this.data.reason : undefined;
  }

  /** The offending parameter, when the error names one. */
  get field(): string | undefined {
    return typeof this.data.field === "string" ? this.data.field : undefined;
  }
}

/** The connection to the bridge is gone. A request it interrupted may or may not have been
 * received: send it again unchanged. */
export class ConnectionLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLost";
  }
}

// -- options and parameters ------------------------------------------------------------------

export interface ConnectOptions {
  /** Authenticate by the `Authorization` header (default), or by an `auth` message. */
  header?: boolean;
  openTimeoutMs?: number;
  reconnect?: boolean;
  lastSeq?: number;
  /** First and longest pause between reconnect attempts. */
  backoffMs?: [number, number];
}

export interface SaleParams {
  terminal: string; orderNo: string; amount: string; currency: string; tip?: string;
  description?: string; wait?: boolean; timeoutS?: number;
}

export interface QrSaleParams {
  orderNo: string; amount: string; currency: string; subject: string; body?: string;
  display?: string; printSlip?: boolean; terminal?: string; wait?: boolean; timeoutS?: number;
}

export interface VoidParams {
  orderNo: string; origOrderNo: string; terminal?: string; managerPin?: string;
}

export interface RefundParams {
  orderNo: string; origOrderNo: string; amount: string; description?: string;
  managerPin?: string;
}

export interface TransactionsParams {
  terminal?: string; state?: string; since?: string; limit?: number; cursor?: string;
}

/** Close code of a connection whose token was refused. */
const CLOSE_UNAUTHORIZED = 4401;
/** How long a waiting payment may take by default at the bridge, and the margin on top. */
const DEFAULT_WAIT_MS = 300_000;
const ANSWER_MARGIN_MS = 30_000;

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

// -- the client ----------------------------------------------------------------------------------

/** One register's connection to the bridge; make it with {@link EcrClient.connect}. */
export class EcrClient {
  /** How many times the connection was made again. */
  reconnects = 0;

  private nextId = 1;
  private readonly waiting = new Map<number, Pending>();
  private readonly notes: Notification[] = [];
  private readonly noteWaiters: Array<(note: Notification) => void> = [];
  private held: Notification[] | null = null;
  private ws: WebSocket | null = null;
  private seq: number;
  private readonly replayAtConnect: boolean;
  private closing = false;
  private fatal: Error | null = null;
  private wake: Array<() => void> = [];

  private constructor(readonly url: string, private readonly token: string,
                      private readonly options: Required<Omit<ConnectOptions, "lastSeq">>,
                      lastSeq: number | undefined) {
    this.seq = lastSeq ?? 0;
    this.replayAtConnect = lastSeq !== undefined || options.reconnect;
  }

  /** Connect and authenticate, then replay from `lastSeq` when given. The first
   * connection's failure rejects (a refused token with HTTP 401, a network error...). */
  static async connect(url: string, token: string,
                       options: ConnectOptions = {}): Promise<EcrClient> {
    const client = new EcrClient(url, token, {
      header: options.header ?? true,
      openTimeoutMs: options.openTimeoutMs ?? 10_000,
      reconnect: options.reconnect ?? false,
      backoffMs: options.backoffMs ?? [500, 10_000],
    }, options.lastSeq);
    await client.open();
    return client;
  }

  /** The highest `seq` delivered; replays start after it. */
  get lastSeq(): number { return this.seq; }

  /** Whether a connection is open and authenticated now. */
  get connected(): boolean { return this.ws !== null; }

  /** Close the connection and stop reconnecting; calls in flight reject. */
  async close(): Promise<void> {
    this.closing = true;
    const ws = this.ws;
    this.ws = null;
    this.wakeWaiters();
    if (ws !== null && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => { ws.once("close", () => resolve()); ws.close(); });
    }
    this.failWaiting(new ConnectionLost("the client was closed"));
  }

  // -- calls -------------------------------------------------------------------------------

  /** Send one request and resolve with its `result`; EcrError for an error answer,
   * ConnectionLost when the connection goes, a timeout Error after `timeoutMs`. */
  async call<T = unknown>(method: string, params?: Record<string, unknown>,
                          { timeoutMs = 60_000 }: { timeoutMs?: number } = {}): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    const ws = await this.connection(deadline);
    return await this.request(ws, method, params, deadline - Date.now()) as T;
  }

  ping(): Promise<{ time: string }> { return this.call("ping"); }

  /** A card sale; with `wait` the answer comes when it is final or `timeoutS` passed. */
  sale(p: SaleParams): Promise<Transaction> {
    return this.call("sale", params({
      terminal: p.terminal, order_no: p.orderNo, amount: p.amount, currency: p.currency,
      tip: p.tip, description: p.description, wait: p.wait, timeout_s: p.timeoutS,
    }), { timeoutMs: answerWithin(p.wait, p.timeoutS) });
  }

  /** A wallet QR sale; the answer's `qr.deeplink` is what the QR code encodes. */
  qrSale(p: QrSaleParams): Promise<Transaction> {
    return this.call("qr_sale", params({
      order_no: p.orderNo, amount: p.amount, currency: p.currency, subject: p.subject,
      body: p.body, display: p.display, terminal: p.terminal, wait: p.wait,
      timeout_s: p.timeoutS, print: p.printSlip ? true : undefined,
    }), { timeoutMs: answerWithin(p.wait, p.timeoutS) });
  }

  void(p: VoidParams): Promise<Transaction> {
    return this.call("void", params({
      order_no: p.orderNo, orig_order_no: p.origOrderNo, terminal: p.terminal,
      manager_pin: p.managerPin,
    }), { timeoutMs: answerWithin(true) });
  }

  refund(p: RefundParams): Promise<Transaction> {
    return this.call("refund", params({
      order_no: p.orderNo, orig_order_no: p.origOrderNo, amount: p.amount,
      description: p.description, manager_pin: p.managerPin,
    }), { timeoutMs: answerWithin(true) });
  }

  cancel(orderNo: string): Promise<Transaction> {
    return this.call("cancel", { order_no: orderNo }, { timeoutMs: answerWithin(true) });
  }

  status(orderNo: string, { refresh = false }: { refresh?: boolean } = {}):
      Promise<Transaction> {
    return this.call("status", { order_no: orderNo, refresh });
  }

  transactions(p: TransactionsParams = {}): Promise<TransactionPage> {
    return this.call("transactions.list", params({ ...p }));
  }

  terminals(): Promise<Terminal[]> { return this.call("terminals.list"); }

  batchStatus(terminal?: string): Promise<Batch[]> {
    return this.call("batch.status", params({ terminal }));
  }

  batchClose(terminal: string, { managerPin }: { managerPin?: string } = {}): Promise<Batch> {
    return this.call("batch.close", params({ terminal, manager_pin: managerPin }),
                     { timeoutMs: answerWithin(true) });
  }

  /** One `events.replay` answer (the client replays by itself; see above). */
  replay(sinceSeq: number): Promise<Event[]> {
    return this.call("events.replay", { since_seq: sinceSeq });
  }

  // -- notifications -----------------------------------------------------------------------

  /** The next notification; rejects if none comes within `timeoutMs`. */
  nextNotification(timeoutMs = 10_000): Promise<Notification> {
    const queued = this.notes.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = (note: Notification) => { clearTimeout(timer); resolve(note); };
      const timer = setTimeout(() => {
        const at = this.noteWaiters.indexOf(waiter);
        if (at >= 0) this.noteWaiters.splice(at, 1);
        reject(new Error(`no notification within ${timeoutMs} ms`));
      }, timeoutMs);
      this.noteWaiters.push(waiter);
    });
  }

  /** Every notification, in `seq` order, each once. */
  async *notifications(): AsyncGenerator<Notification> {
    for (;;) {
      const queued = this.notes.shift();
      if (queued !== undefined) {
        yield queued;
        continue;
      }
      yield await new Promise<Notification>((resolve) => this.noteWaiters.push(resolve));
    }
  }

  private deliver(note: Notification): void {
    if (this.held !== null) {
      this.held.push(note);
      return;
    }
    const seq = note.params?.seq;
    if (Number.isInteger(seq)) {
      if ((seq as number) <= this.seq) return;  // seen already: live and replay overlap
      this.seq = seq as number;
    }
    const waiter = this.noteWaiters.shift();
    if (waiter !== undefined) waiter(note); else this.notes.push(note);
  }

  // -- the connection ----------------------------------------------------------------------------

  /** The open connection, waiting (until `deadline`) for a reconnect in progress. */
  private async connection(deadline: number): Promise<WebSocket> {
    for (;;) {
      if (this.fatal !== null) throw new ConnectionLost(`the client stopped: ${this.fatal.message}`);
      if (this.closing) throw new ConnectionLost("the client was closed");
      if (this.ws !== null) return this.ws;
      if (!this.options.reconnect) throw new ConnectionLost("the bridge closed the connection");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for the bridge");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  private wakeWaiters(): void {
    const wake = this.wake;
    this.wake = [];
    for (const w of wake) w();
  }

  /** Connect, authenticate, replay; the connection is in use once this resolves. */
  private async open(): Promise<void> {
    const headers = this.options.header ? { Authorization: `Bearer ${this.token}` } : undefined;
    const ws = new WebSocket(this.url, {
      headers, handshakeTimeout: this.options.openTimeoutMs, maxPayload: 1 << 20,
      perMessageDeflate: false,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        ws.terminate();
        const refused = res.statusCode === 401;
        reject(Object.assign(new Error(`the bridge answered HTTP ${res.statusCode}`),
                             { refused }));
      });
      ws.once("error", reject);
    });
    if (this.replayAtConnect) this.held = [];  // live notes start at once: hold them
    ws.on("message", (data) => this.onMessage(data.toString()));
    ws.once("close", (code) => this.onClose(ws, code));
    ws.on("error", () => { /* a close follows; onClose decides what to do */ });
    try {
      if (!this.options.header) {
        await this.request(ws, "auth", { token: this.token }, 10_000);
      }
      if (this.replayAtConnect) await this.catchUp(ws);
    } catch (error) {
      this.held = null;  // the next connection replays what they held
      ws.removeAllListeners("close");
      ws.terminate();
      throw error;
    }
    this.ws = ws;
    this.wakeWaiters();
  }

  /** `events.replay` from `lastSeq` until empty, then the held live notifications. */
  private async catchUp(ws: WebSocket): Promise<void> {
    try {
      for (;;) {
        const events = await this.request(ws, "events.replay", { since_seq: this.seq },
                                          30_000) as Event[];
        if (events.length === 0) break;
        const held = this.held;
        this.held = null;
        for (const e of events) {
          this.deliver({ jsonrpc: "2.0", method: e.method ?? e.type, params: e.params });
        }
        this.held = held;
      }
    } finally {
      const held = this.held ?? [];
      this.held = null;
      held.sort((a, b) => (a.params?.seq ?? 0) - (b.params?.seq ?? 0));
      for (const note of held) this.deliver(note);
    }
  }

  private onClose(ws: WebSocket, code: number): void {
    if (this.ws === ws) this.ws = null;
    this.failWaiting(new ConnectionLost(
      "the connection to the bridge was lost; the request may or may not have reached it: " +
      "send it again with the same order_no"));
    if (code === CLOSE_UNAUTHORIZED) this.fatal = new Error("the bridge refused the token");
    if (this.closing || this.fatal !== null || !this.options.reconnect) {
      this.wakeWaiters();
      return;
    }
    void this.reopen();
  }

  private async reopen(): Promise<void> {
    const [first, longest] = this.options.backoffMs;
    let delay = first;
    while (!this.closing) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.closing) break;
      try {
        await this.open();
        this.reconnects += 1;
        return;
      } catch (error) {
        if ((error as { refused?: boolean }).refused) {
          this.fatal = new Error("the bridge refused the token");
          break;
        }
      }
      delay = Math.min(delay * 2, longest);
    }
    this.wakeWaiters();
  }

  private request(ws: WebSocket, method: string, params: Record<string, unknown> | undefined,
                  timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    const frame: Record<string, unknown> = { jsonrpc: "2.0", id, method };
    if (params !== undefined) frame.params = params;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
      }, Math.max(timeoutMs, 0));
      this.waiting.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      ws.send(JSON.stringify(frame), (error) => {
        if (error) {
          this.waiting.get(id)?.reject(new ConnectionLost("the bridge closed the connection"));
          this.waiting.delete(id);
        }
      });
    });
  }

  private failWaiting(error: Error): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const p of waiting) p.reject(error);
  }

  private onMessage(text: string): void {
    let msg: any;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg === null || typeof msg !== "object") return;
    if (msg.id !== undefined && msg.id !== null && msg.method === undefined) {
      const pending = this.waiting.get(msg.id);
      if (pending === undefined) return;
      this.waiting.delete(msg.id);
      if (msg.error) pending.reject(toError(msg.error)); else pending.resolve(msg.result);
    } else if ("id" in msg && msg.error) {
      // An error the bridge could not tie to a request (e.g. a parse error).
      const [first] = this.waiting.entries();
      if (first !== undefined) {
        this.waiting.delete(first[0]);
        first[1].reject(toError(msg.error));
      }
    } else if (typeof msg.method === "string") {
      this.deliver(msg as Notification);
    }
  }
}

function toError(error: { code?: number; message?: string; data?: Record<string, unknown> }):
    EcrError {
  return new EcrError(error.code ?? 0, error.message ?? "", error.data ?? {});
}

/** The given parameters, without those left out (undefined). */
function params(given: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
}

/** How long to wait for the answer of a call the bridge may hold for `timeoutS`. */
function answerWithin(wait: boolean | undefined, timeoutS?: number): number {
  return wait === false ? 60_000 : (timeoutS ? timeoutS * 1000 : DEFAULT_WAIT_MS) +
    ANSWER_MARGIN_MS;
}
