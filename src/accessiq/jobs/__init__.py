"""Jobs: the runs table as a durable queue, the scheduler that fills it, and the worker that drains it.

- `queue`: claim a queued run with a lease, renew it, release it, recover runs of lost workers.
- `scheduler`: when each directory is due, with missed slots coalesced and backoff after failures.
- `worker`: the loop that claims and executes runs, N at a time, and stops cleanly on SIGTERM.
"""
