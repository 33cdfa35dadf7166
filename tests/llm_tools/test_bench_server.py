"""The server benchmark's smoke test: the tiny model, two clients, a few tokens."""

from experiments.llm_tools.bench_server import run


def test_bench_server_runs_and_batches_the_clients():
    res = run("tiny", clients=2, prompt_tokens=8, new_tokens=4, temperature=0.0, repeats=1,
              window_ms=200.0)
    (r,) = res["rounds"]
    assert 0 < r["in_process_tokens"] == r["server_tokens"] <= 2 * 4  # greedy: the same work
    assert r["server_decode_loops"] == 1  # both requests in one decode loop
    assert res["server_over_in_process"] > 0
    assert res["server_tokens_per_s"] == r["server_tokens"] / r["server_s"]
