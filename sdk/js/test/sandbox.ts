/**
 * Test harness: a real `posbridge serve --sandbox` on free ports of 127.0.0.1, with its own
 * state folder, and a TCP relay that can drop the connections running through it.
 *
 * The daemon is `$POSBRIDGE` (default: `posbridge` on the PATH), so the same tests run against
 * a source checkout's venv, an installed wheel or the Debian package.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, openSync, closeSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface Sandbox {
  url: string;
  http: string;
  token: string;
  pin: string;
  stop(): Promise<void>;
}

export async function startSandbox(): Promise<Sandbox> {
  const dir = mkdtempSync(join(tmpdir(), "posbridge-js-"));
  const ready = join(dir, "ready.json");
  const log = openSync(join(dir, "daemon.log"), "a");
  const command = process.env.POSBRIDGE ?? "posbridge";
  const proc: ChildProcess = spawn(command, [
    "serve", "--sandbox", "--data-dir", join(dir, "state"), "--ecr-listen", "127.0.0.1:0",
    "--http-listen", "127.0.0.1:0", "--ready-file", ready, "--approve-delay", "0.05",
    "--log-format", "json",
  ], { stdio: ["ignore", "ignore", log] });
  closeSync(log);
  let exited: number | null = null;
  proc.once("exit", (code) => { exited = code ?? -1; });
  for (let i = 0; !existsSync(ready); i++) {  // bounded: about a minute on a slow machine
    if (exited !== null) throw new Error(`the sandbox exited with ${exited}: see ${dir}`);
    if (i > 1200) throw new Error(`the sandbox did not start: see ${dir}`);
    await sleep(50);
  }
  const ports = JSON.parse(readFileSync(ready, "utf8"));
  const state = join(dir, "state");
  return {
    url: `ws://127.0.0.1:${ports.ecr_port}/ecr`,
    http: `http://127.0.0.1:${ports.http_port}`,
    token: readFileSync(join(state, "sandbox-token"), "utf8").trim(),
    pin: readFileSync(join(state, "manager-pin"), "utf8").trim(),
    async stop() {
      if (exited === null) {
        const gone = new Promise((resolve) => proc.once("exit", resolve));
        proc.kill("SIGTERM");
        await gone;
      }
      if (exited !== 0) throw new Error(`the sandbox ended with ${exited}: see ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP relay to `target`; `cut()` drops every connection, `refusing` closes new ones. */
export class Relay {
  refusing = false;
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | null = null;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<string> {
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => { client.destroy(); upstream.destroy(); });
        s.on("close", () => { this.sockets.delete(s); client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as net.AddressInfo;
    return `ws://127.0.0.1:${port}/ecr`;
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}
