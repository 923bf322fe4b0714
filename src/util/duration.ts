/** Times written by people: the config file's `…Ms` limits and serve's time flags. */

const DURATION_RE = /^(\d+(?:\.\d+)?) *(ms|s|min|h)?$/i;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };

/**
 * `"500ms"`, `"10s"`, `"2min"`, `"1h"`, or a bare number in `bareUnit`, as whole milliseconds (rounded);
 * NaN when it is none of these. Callers judge the range and name the setting in their error.
 */
export function durationMs(text: string, bareUnit: 'ms' | 's'): number {
  const m = DURATION_RE.exec(text.trim());
  return m === null ? NaN : Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? bareUnit).toLowerCase()]!);
}
