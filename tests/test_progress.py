"""Tests of jcomrl.logging.Progress, the one progress/ETA printer (fake clock, no sleeping)."""

from jcomrl.logging import Progress, bar, format_seconds


def test_rate_counts_timed_work_only_and_eta_is_the_rest_at_that_rate():
  now = [0.0]
  lines = []
  p = Progress(1000, "step", unit="updates", progress=lines.append, clock=lambda: now[0],
               waiting="rate after the next chunk")
  now[0] = 30.0
  p.advance(100, timed=False)  # the chunk that compiled
  assert p.rate is None and p.eta is None
  assert p.report("critic/loss=1.000") == ("step 100/1,000 (10%, rate after the next chunk): "
                                           "critic/loss=1.000")
  now[0] = 40.0
  p.advance(100)  # 100 updates in the 10 s since the last call
  assert p.rate == 10.0 and p.eta == 80.0
  assert lines[-1].startswith("step 100/")
  assert p.line() == "step 200/1,000 (20%, 10 updates/s, ETA 1:20)"
  p.update(1000, seconds=1.0)
  assert p.eta is None and p.line().startswith("step 1,000/1,000 (100%, ")


def test_units_notes_unknown_totals_and_formats():
  p = Progress(4, "collect chunk", unit="transitions", unit_size=500, waiting="",
               clock=lambda: 0.0)
  p.advance(timed=False)
  assert p.line("500 transitions", note="reused from the work dir") == (
      "collect chunk 1/4 (25%, reused from the work dir): 500 transitions")
  p.advance(seconds=0.5)
  assert p.line() == "collect chunk 2/4 (50%, 1,000 transitions/s, ETA 0:01)"
  q = Progress(None, "behaviour step", show_elapsed=True, clock=lambda: 0.0)
  assert q.update(600).line("eval return 1.00") == (
      "behaviour step 600 (elapsed 0:00): eval return 1.00")
  assert format_seconds(59.6) == "1:00" and format_seconds(3725) == "1:02:05"
  assert bar(1, 4, width=4) == "[#...]  25%"
