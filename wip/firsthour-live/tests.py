

# flowc run: people's output on stderr, -q, the live line ------------------------------------------


def test_run_prints_progress_and_summary_on_stderr_and_nothing_on_stdout(project: Path) -> None:
    env = _env(FLOWC_RESULTS_DB=f"sqlite:///{project}/r.db")
    done = flowc("run", "specs/fan_in.yaml", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "fan_in: Success" in done.stderr
    quiet = flowc("run", "specs/fan_in.yaml", "-q", cwd=project, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")


def test_a_running_child_shows_a_live_line_with_its_elapsed_time_on_a_terminal(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    assert flowc("init", str(root), "-q", cwd=tmp_path).returncode == 0
    produce = root / "slow_flows" / "produce.py"
    produce.write_text(produce.read_text().replace("    return 2 * x\n", "    import time\n    time.sleep(3)\n    return 2 * x\n"))
    assert flowc("lock", "-q", cwd=root).returncode == 0
    assert flowc("generate", "-q", cwd=root).returncode == 0
    code, drawn = _on_a_terminal(["run", "specs/slow.yaml"], root)
    assert code == 0, drawn
    assert re.search(r"running: produce \d+s", drawn), drawn
