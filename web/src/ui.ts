import type { Api } from "./api";
import { describeError, isAbort } from "./api";

type Child = Node | string | number | null | undefined | false;

/** A tiny element builder: attributes, `on…` listeners, children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {},
  ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "class") el.className = String(v);
    else if (k in el && typeof v !== "string") (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

export interface Ctx {
  api: Api;
  /** Run an RPC with the busy indicator; errors go to the banner and come back as undefined. */
  call<T>(p: Promise<T>): Promise<T | undefined>;
  showError(e: unknown): void;
  clearError(): void;
  go(hash: string): void;
  /** Aborted when the screen is left: pass it to streams and long calls. */
  signal: AbortSignal;
}

export function makeCtx(api: Api, signal: AbortSignal): Ctx {
  const busy = document.getElementById("busy")!;
  const banner = document.getElementById("error")!;
  let inflight = 0;
  const ctx: Ctx = {
    api,
    signal,
    async call<T>(p: Promise<T>): Promise<T | undefined> {
      inflight++;
      busy.hidden = false;
      try {
        return await p;
      } catch (e) {
        if (!isAbort(e) && !signal.aborted) ctx.showError(e);
        return undefined;
      } finally {
        if (--inflight === 0) busy.hidden = true;
      }
    },
    showError(e: unknown) {
      banner.textContent = describeError(e);
      banner.hidden = false;
    },
    clearError() {
      banner.hidden = true;
      banner.textContent = "";
    },
    go(hash: string) {
      location.hash = hash;
    },
  };
  return ctx;
}

/** Bounded-concurrency map (thumbnail loading). */
export async function pool<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
