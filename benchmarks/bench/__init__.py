"""`make bench`: waitline against the ceiling and faust-streaming, side by side, in one run.

For each workload (``workloads``) the same generated input is written to fresh topics, then each
contender (``contenders``: a separate process, its own consumer group) consumes it from the start:

- ceiling:  a raw confluent-kafka consume → produce passthrough with the same batching;
- waitline: the real worker process (`python -m waitline worker`);
- waitline-2p: `waitline worker --processes 2`, two members of one group under one command, for
  the machine's two cores (throughput only: it is not a per-process figure);
- faust:    the same rules as an idiomatic faust-streaming app (benchmarks/faust_app.py).

Throughput (``measure``) is input records per second between the first sample of the
contender's committed input offsets that shows progress and the sample where everything is
committed (so process start-up and the group join are not counted), median of --runs runs for
every contender and workload. The runs go round by round (every contender once a round), so the
machine's drift falls on all of them alike, and each ratio is also taken within every round (the
"paired" ratio: the median of the per-round ratios). Faust is given --faust-window seconds per
run (it is ~15x slower) and its rate is taken over that window.
large-state first loads 1,000,000 pending waits, waits until they are applied, then produces
the match-heavy stream (pre-encoded, so the producer is not the bottleneck) and measures that.
hot-pair puts everything on one pair (100k events, 10k waits, 10k events fanning out to them);
its rate is also given as a ratio to match-heavy's.

Then (``live``), at a fixed offered load of half each contender's measured match-heavy maximum:
match latency (event produced → resume readable); the ceiling's also at waitline's offered rate,
the broker's floor for one hop at the load waitline is measured at. For waitline: timeout
lateness and early firings, with an empty state and with 1,000,000 pending waits; peak RSS
(VmHWM) of every contender; the restore rate from benchmarks/results/recovery.json (`make
recovery`).

The live streams (latency, lateness) are offered by a producer with linger.ms --offer-linger
(default 5, librdkafka's own). On the embedded broker that setting decides the latency more than
the worker does: Tansu's cost grows with the number of record batches a partition holds
(docs/embedded-broker.md), so the ceiling's and waitline's latency, and waitline's lateness with
an empty state and with 1,000,000 pending waits, are measured again with the offer at linger.ms
--batched-offer-linger (50; 0 leaves it out). Each live measurement starts on a restarted, empty
embedded broker (--keep-broker: on the one in use); the throughput runs use the broker as the
previous measurement left it. `--latency-at RATES` and `--lateness-at RATES` measure only
waitline's match latency or timeout lateness at those rates (`--lateness-pending N`: with N
pending waits applied first; `--trace`: with where waitline's time goes, from
benchmarks/traced_worker.py, summarised by ``trace``).

Writes benchmarks/results/latest.json and latest.png and prints a table (``summary``). `--profile`
instead runs waitline once over match-heavy under py-spy and writes where the time goes to
benchmarks/results/profile.txt (``profile``). The command line is ``cli``.
"""
