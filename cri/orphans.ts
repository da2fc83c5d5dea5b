/**
 * Containers that outlived their pod's monitor. A monitor killed with SIGKILL leaves its containers running,
 * re-parented to init: their stdout and stderr pipes died with it, no exit file will be written for them, and the
 * monitor started in its place cannot reap them (they are not its children). From then on their state comes from
 * the OCI runtime's `state`, asked whenever one is looked at (ContainerStatus, ListContainers, stop) and every
 * 2 s while any of them lives, so a recorded finish time is at most that late while the daemon runs. Their exit
 * status cannot be known: the exit is recorded with code 255 and reason Error (what the kubelet gets from CRI-O
 * when conmon's exit file is missing) and a message saying why.
 * @module
 */
import { errorMessage, FailedPrecondition } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import type { ContainerRecord, OciRuntime, OciState, StateStore } from "../runtime/mod.ts";
import type { ContainerRuntime } from "./containers.ts";
import { nowNanos } from "./ids.ts";
import type { PodRuntime } from "./pods.ts";

/** The exit code recorded for a container whose real exit status went with its monitor. */
export const UNKNOWN_EXIT_CODE = 255;

/** The first words of the message of such an exit (ContainerStatus `message`). */
export const UNKNOWN_EXIT_MESSAGE =
  "exit status unknown: the pod's monitor died while the container ran, so no exit was recorded for it";

/** What {@link Orphans} needs. */
export interface OrphansOptions {
  state: StateStore;
  runtimeFor: (handler: string) => OciRuntime;
  /** How often the runtime is asked about orphans that still live; default 2000 ms. */
  pollMs?: number;
  /** How often a stop polls the runtime's state; default 100 ms. */
  stopPollMs?: number;
}

type Ctr = ContainerRecord<ContainerRuntime>;

function live(c: Ctr | undefined): c is Ctr {
  return c !== undefined && (c.state === "running" || c.state === "created");
}

/** True when the container is known to have outlived its pod's monitor. */
export function outlivedMonitor(c: ContainerRecord<ContainerRuntime>): boolean {
  return c.runtime.monitorLostAt !== undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The containers of dead monitors, followed through the OCI runtime. */
export class Orphans {
  readonly #o: OrphansOptions;
  /** Orphans last seen alive: polled until they stop. */
  readonly #watched = new Set<string>();
  readonly #log = logger("orphans");
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling: Promise<void> | undefined;
  #closed = false;

  constructor(opts: OrphansOptions) {
    this.#o = opts;
  }

  /** Marks a live container as having outlived its monitor (once), then {@link check}s it. */
  async adopt(id: string): Promise<void> {
    const c = this.#o.state.container<ContainerRuntime>(id);
    if (!live(c)) return;
    if (!outlivedMonitor(c)) {
      // Read and written with nothing in between: the record is current.
      this.#o.state.updateContainer(id, { runtime: { ...c.runtime, monitorLostAt: nowNanos() } });
      this.#log.warn("container outlived its pod's monitor; following it through the OCI runtime", {
        container: id,
        pod: c.podId,
        state: c.state,
      });
    }
    await this.check(id);
  }

  /**
   * Asks the OCI runtime about an orphan: one it reports stopped, or no longer knows, gets its exit recorded; one
   * that runs is watched. A runtime that fails to answer changes nothing.
   */
  async check(id: string): Promise<void> {
    const c = this.#o.state.container<ContainerRuntime>(id);
    if (!live(c) || !outlivedMonitor(c)) {
      this.#watched.delete(id);
      return;
    }
    let st: OciState | undefined;
    try {
      st = await this.#runtime(c).state(id);
    } catch (err) {
      this.#log.debug("runtime state failed", { container: id, error: errorMessage(err) });
      this.#watch(id);
      return;
    }
    this.#apply(id, st);
  }

  /**
   * {@link check} for several orphans, with one `list` per runtime handler when the runtime can list; one missing
   * from the list is asked about alone before its exit is recorded.
   */
  async checkMany(ids: string[]): Promise<void> {
    const byHandler = new Map<string, string[]>();
    for (const id of ids) {
      const c = this.#o.state.container<ContainerRuntime>(id);
      if (!live(c) || !outlivedMonitor(c)) {
        this.#watched.delete(id);
        continue;
      }
      const handler = this.#o.state.pod<PodRuntime>(c.podId)?.runtimeHandler ?? "runc";
      byHandler.set(handler, [...(byHandler.get(handler) ?? []), id]);
    }
    await Promise.all([...byHandler].map(async ([handler, group]) => {
      const runtime = this.#o.runtimeFor(handler);
      let states: Map<string, OciState> | undefined;
      if (runtime.list && group.length > 1) {
        try {
          states = new Map((await runtime.list()).map((s) => [s.id, s]));
        } catch (err) {
          this.#log.debug("runtime list failed", { handler, error: errorMessage(err) });
        }
      }
      for (const id of group) {
        if (this.#closed) return;
        const st = states?.get(id);
        if (st === undefined) await this.check(id);
        else this.#apply(id, st);
      }
    }));
  }

  /**
   * Stops an orphan: its stop `signal`, then SIGKILL to all its processes after `timeoutSec` (at once when 0 or
   * when it never started), each time polling the runtime's state until it reports the container stopped; then
   * records the exit. Throws FailedPrecondition when it is still not stopped 30 s after SIGKILL.
   */
  async stop(id: string, signal: string, timeoutSec: number): Promise<void> {
    const c = this.#o.state.container<ContainerRuntime>(id);
    if (!live(c)) return;
    const runtime = this.#runtime(c);
    const pollMs = this.#o.stopPollMs ?? 100;
    const stopped = async (ms: number): Promise<boolean> => {
      const deadline = Date.now() + ms;
      for (;;) {
        const st = await runtime.state(id).then((s) => s?.status ?? "gone", () => "unknown");
        if (st === "stopped" || st === "gone") return true;
        if (Date.now() >= deadline) return false;
        await sleep(pollMs);
      }
    };
    const sent: string[] = [];
    const send = async (sig: string, all: boolean) => {
      sent.push(sig);
      await runtime.kill(id, sig, { all }).catch((err) =>
        this.#log.debug("signal not delivered", { container: id, signal: sig, error: errorMessage(err) })
      );
    };
    const record = () => this.#recordExit(id, `${UNKNOWN_EXIT_MESSAGE}; StopContainer sent ${sent.join(", then ")}`);
    if (timeoutSec > 0 && c.state === "running") {
      await send(signal, false);
      if (await stopped(timeoutSec * 1000)) return record();
    }
    await send("SIGKILL", true);
    if (!(await stopped(30_000))) {
      throw new FailedPrecondition(
        `container ${id} (its pod's monitor is gone) is not stopped 30 s after SIGKILL, by ${runtime.name} state`,
      );
    }
    record();
  }

  /** Stops watching (at daemon shutdown); waits for a poll in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#polling;
  }

  #runtime(c: Ctr): OciRuntime {
    const pod = this.#o.state.pod<PodRuntime>(c.podId);
    return this.#o.runtimeFor(pod?.runtimeHandler ?? "runc");
  }

  #apply(id: string, st: OciState | undefined): void {
    if (st === undefined) {
      this.#recordExit(
        id,
        `${UNKNOWN_EXIT_MESSAGE}; the OCI runtime no longer knows it (finished_at: when davit saw that)`,
      );
      return;
    }
    if (st.status === "stopped") {
      this.#recordExit(
        id,
        `${UNKNOWN_EXIT_MESSAGE}; the OCI runtime reports it stopped (finished_at: when davit saw that)`,
      );
      return;
    }
    const c = this.#o.state.container<ContainerRuntime>(id);
    if (!live(c)) return;
    // Started just before a crash of the daemon, which then never recorded it.
    if (c.state === "created" && (st.status === "running" || st.status === "paused")) {
      this.#o.state.updateContainer(id, {
        state: "running",
        ...(c.startedAt === "0" ? { startedAt: nowNanos() } : {}),
      });
    }
    this.#watch(id);
  }

  #recordExit(id: string, message: string): void {
    const c = this.#o.state.container<ContainerRuntime>(id);
    this.#watched.delete(id);
    // Checked and written with nothing in between: a stop and a poll cannot both record it.
    if (!live(c)) return;
    this.#o.state.updateContainer(id, {
      state: "exited",
      exitCode: UNKNOWN_EXIT_CODE,
      reason: "Error",
      finishedAt: nowNanos(),
      message,
    });
    this.#log.info("container without a monitor stopped", { container: id, pod: c.podId });
  }

  #watch(id: string): void {
    this.#watched.add(id);
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => {
      this.#polling ??= this.#poll().finally(() => this.#polling = undefined);
    }, this.#o.pollMs ?? 2000);
  }

  /** One round over the watched orphans. */
  async #poll(): Promise<void> {
    if (this.#watched.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    await this.checkMany([...this.#watched]).catch((err) =>
      this.#log.warn("checking containers without a monitor failed", { error: errorMessage(err) })
    );
  }
}
