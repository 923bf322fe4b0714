#!/usr/bin/env python3
"""CPU per thread kind and round of a pull profiled by `perf` (issue 13: which thread does what).

  perf record -k CLOCK_MONOTONIC -e cpu-clock -F 2000 -a -o P.data -- \\
      node --perf-basic-prof-only-functions --import tsx bench/profile-pull.ts pull 5 > MARKS
  perf script -F comm,pid,tid,time,ip,sym,dso -i P.data > SCRIPT
  python3 bench/perf-threads.py MARKS SCRIPT [MS_PER_SAMPLE=0.5]

MARKS holds profile-pull.ts's `mark pids NODE REGISTRY` and `mark ROUND start|end NS` lines (CLOCK_MONOTONIC,
as perf's -k). A thread's kind comes from its hottest symbols: the inflate worker (inflate_fast), the hash
worker (sha256), V8's helper threads (marking, sweeping, TurboFan), libuv's pool (the kernel's write
paths); the registry is its own process. Also prints each round's head (before the inflate thread first
runs) and tail (after it last ran): the parts of a pull the two cores cannot share.
"""
import collections, re, sys

lines = open(sys.argv[1]).read().splitlines()
node_pid, registry_pid = (int(x) for x in next(l for l in lines if l.startswith('mark pids')).split()[2:4])
rounds = []
for l in lines:
    m = l.split()
    if len(m) == 4 and m[0] == 'mark' and m[2] in ('start', 'end'):
        if m[2] == 'start': rounds.append([m[1], int(m[3]) / 1e9, None])
        else: rounds[-1][2] = int(m[3]) / 1e9
per = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
samples, symbols = [], collections.defaultdict(collections.Counter)
for line in open(sys.argv[2]):
    m = re.match(r'\s*\S+\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+[0-9a-f]+\s+(.*)', line)
    if not m: continue
    pid, tid, t, sym = int(m.group(1)), int(m.group(2)), float(m.group(3)), m.group(4)
    if pid == registry_pid: tid = -1
    elif pid != node_pid: continue
    samples.append((t, tid))
    symbols[tid][sym.split(' (')[0][:40]] += 1

def kind(tid):
    if tid == -1: return 'registry'
    if tid == node_pid: return 'main'
    top = ' '.join(s for s, _ in symbols[tid].most_common(8))
    if 'inflate_fast' in top: return 'inflate'
    if 'sha256' in top: return 'hash'
    if re.search('Marking|Sweep|compiler|Scaveng|Concurrent', top): return 'v8'
    if re.search('copy_folio|ext4|fdatasync|file_write|writeback', top): return 'libuv'
    return 'other'

kinds = ['main', 'inflate', 'hash', 'v8', 'libuv', 'other', 'registry']
print('round      wall  ' + ' '.join(f'{k:>8}' for k in kinds) + '   process (no registry)')
for name, start, end in rounds:
    c = collections.Counter(kind(tid) for t, tid in samples if start <= t < end)
    total = sum(v for k, v in c.items() if k != 'registry') * per
    print(f'{name:8} {(end - start) * 1000:6.0f}  ' + ' '.join(f'{c[k] * per:8.0f}' for k in kinds) + f'   {total:6.0f}')
print('head / tail: before the inflate thread first runs and after it last ran (wall ms; CPU ms by kind)')
for name, start, end in rounds:
    inflating = [t for t, tid in samples if start <= t < end and kind(tid) == 'inflate']
    if not inflating: continue
    a, b = min(inflating), max(inflating)
    head = collections.Counter(kind(tid) for t, tid in samples if start <= t < a)
    tail = collections.Counter(kind(tid) for t, tid in samples if b < t < end)
    show = lambda c: ', '.join(f'{k} {v * per:.0f}' for k, v in c.most_common())
    print(f'{name:8} head {(a - start) * 1000:5.0f}: {show(head)} | tail {(end - b) * 1000:5.0f}: {show(tail)}')
