"""The shell helpers in utils/: option parsing, stage gating with markers, logging, launching, new recipes."""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import venv_env

UTILS = Path(__file__).resolve().parents[1] / "utils"


def bash(script: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    path = cwd / "t.sh"
    path.write_text(script)
    return subprocess.run(["bash", str(path), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60)


OPTS = f"""
stage=0; stop_stage=100; foo_bar=x; force=false; nj=4
help_message="Usage: t.sh [--stage N] [--foo-bar X]"
. {UTILS}/parse_options.sh
echo "stage=$stage stop=$stop_stage foo=$foo_bar force=$force nj=$nj rest=$*"
"""
POSITIONAL = OPTS.replace(". ", "parse_options_positional=true\n. ", 1)


def test_parse_options_sets_declared_variables(tmp_path):
    r = bash(OPTS, "--stage", "3", "--force", "--stop-stage", "5", "--foo-bar=y z", "--nj", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=3 stop=5 foo=y z force=true nj=2 rest="
    r = bash(OPTS, "--force", "false", "--nj", "3", "--force", cwd=tmp_path)
    assert r.stdout.strip() == "stage=0 stop=100 foo=x force=true nj=3 rest="


def test_parse_options_positional_arguments_when_declared(tmp_path):
    """Scripts that take positional arguments (launch.sh MODULE ARGS) stop parsing at the first one."""
    r = bash(POSITIONAL, "--stage", "3", "--force", "pos1", "--x", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=3 stop=100 foo=x force=true nj=4 rest=pos1 --x"
    r = bash(POSITIONAL, "--force", "false", "--", "--stage", cwd=tmp_path)
    assert r.stdout.strip() == "stage=0 stop=100 foo=x force=false nj=4 rest=--stage"


@pytest.mark.parametrize("args,message", [
    (["--bogus", "1"], "invalid option --bogus"),
    (["--stage"], "option --stage needs a value"),
    (["--force=maybe"], "option --force expects true or false, got 'maybe'"),
    (["--no-such-var", "x"], "invalid option --no-such-var"),
    (["--nj=1", "--bad.name", "x"], "invalid option --bad.name"),
])
def test_parse_options_errors(tmp_path, args, message):
    r = bash(OPTS, *args, cwd=tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and r.stdout == ""


def test_parse_options_help(tmp_path):
    r = bash(OPTS, "--stage", "2", "--help", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == "Usage: t.sh [--stage N] [--foo-bar X]"


STAGES = f"""
set -euo pipefail
stage=0; stop_stage=100; force=false; done_dir=exp/.done
. {UTILS}/parse_options.sh
. {UTILS}/stage.sh
for n in 0 1 2 3; do
  if stage_begin $n "step $n"; then echo "ran $n"; stage_done $n; fi
done
not_implemented_stage 5 "future"
echo "end"
"""


def _ran(r):
    return [int(x) for x in re.findall(r"^ran (\d)$", r.stdout, re.M)]


def test_stage_range_markers_and_force(tmp_path):
    r = bash(STAGES, "--stage", "1", "--stop-stage", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _ran(r) == [1, 2]
    assert sorted(p.name for p in (tmp_path / "exp/.done").iterdir()) == ["stage1", "stage2"]
    r = bash(STAGES, "--stop-stage", "3", cwd=tmp_path)
    assert _ran(r) == [0, 3]  # 1 and 2 are done
    assert re.search(r"t\.sh:\d+ stage 1 \(step 1\): already done", r.stderr)
    r = bash(STAGES, "--stage", "2", "--stop-stage", "3", "--force", cwd=tmp_path)
    assert _ran(r) == [2, 3]


def test_stage_numbers_must_be_integers(tmp_path):
    r = bash(STAGES, "--stage", "one", cwd=tmp_path)
    assert r.returncode == 1 and "--stage must be a non-negative integer, got 'one'" in r.stderr and r.stdout == ""


def test_not_implemented_stage(tmp_path):
    r = bash(STAGES, "--stage", "4", cwd=tmp_path)
    assert r.returncode == 1 and "end" not in r.stdout
    assert "stage 5 (future) is not implemented yet in this recipe" in r.stderr
    r = bash(STAGES, "--stage", "6", cwd=tmp_path)  # out of range: silent
    assert r.returncode == 0 and r.stdout.strip() == "end"


def test_log_format(tmp_path):
    r = bash(f". {UTILS}/log.sh\nlog hello world\n", cwd=tmp_path)
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] t\.sh:2 hello world\n", r.stderr)
    r = bash(f". {UTILS}/log.sh\ndie broken\necho after\n", cwd=tmp_path)
    assert r.returncode == 1 and "t.sh:2 ERROR: broken" in r.stderr and "after" not in r.stdout


def _launch(*args, cwd, env=None):
    return subprocess.run([str(UTILS / "launch.sh"), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=60)


def test_launch_command_lines(tmp_path):
    r = _launch("--dry-run", "elfs2t.bin.train", "--config", "a b.yaml", cwd=tmp_path)
    assert r.returncode == 0 and shlex.split(r.stdout) == ["python", "-m", "elfs2t.bin.train", "--config", "a b.yaml"]
    r = _launch("--dry-run", "--nproc", "4", "m", "--x", "1", cwd=tmp_path)
    assert r.stdout.split() == ["torchrun", "--nnodes", "1", "--nproc_per_node", "4", "--standalone", "-m", "m",
                                "--x", "1"]
    r = _launch("--dry-run", "--nproc", "2", "--num-nodes", "3", "--node-rank", "1", "--rdzv-endpoint", "h:1",
                "--rdzv-id", "job7", "m", cwd=tmp_path)
    assert r.stdout.split() == ["torchrun", "--nnodes", "3", "--nproc_per_node", "2", "--node_rank", "1",
                                "--rdzv_backend", "c10d", "--rdzv_endpoint", "h:1", "--rdzv_id", "job7", "-m", "m"]
    assert _launch("--nproc", "0", "m", cwd=tmp_path).returncode == 1
    r = _launch("--nproc", "1", cwd=tmp_path)
    assert r.returncode == 1 and "missing MODULE" in r.stderr


def test_launch_runs_single_process_python(tmp_path):
    import os
    import sys

    (tmp_path / "hello_mod.py").write_text("import os, sys\nprint('args', sys.argv[1:], os.environ.get('RANK'))\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = _launch("--python", sys.executable, "hello_mod", "--a", "1", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "args ['--a', '1'] None"


def test_new_recipe_name_checks(tmp_path):
    r = subprocess.run([str(UTILS / "new_recipe.sh"), "--egs-dir", str(tmp_path), "Bad-Name"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "lower-case" in r.stderr
    (tmp_path / "taken").mkdir()
    r = subprocess.run([str(UTILS / "new_recipe.sh"), "--egs-dir", str(tmp_path), "taken"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "already exists" in r.stderr


JOBS = f"""
. {UTILS}/jobs.sh
jobs_init "$1"
for i in 1 2 3 4; do
  jobs_run "job $i" "out/$i.txt" bash -c "sleep 0.3; ls out/*.lock 2>/dev/null | wc -l; \\
    touch out/$i.lock; sleep 0.3; rm out/$i.lock; [ $i != ${{2:-0}} ] || exit 3; echo done $i"
done
jobs_wait "the test jobs"
echo "all done"
"""


def test_jobs_pool_runs_at_most_n_and_waits_for_all(tmp_path):
    r = bash(JOBS, "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("all done")
    for i in range(1, 5):
        out = (tmp_path / "out" / f"{i}.txt").read_text().split()
        assert out[-2:] == ["done", str(i)]
        assert int(out[0]) <= 1  # at most one other job held its lock: never more than 2 at once
    assert "job 4 in the background: out/4.txt" in r.stderr


def test_jobs_pool_names_the_failed_job_and_its_output(tmp_path):
    r = bash(JOBS, "2", "3", cwd=tmp_path)
    assert r.returncode == 1 and "all done" not in r.stdout
    assert "the test jobs failed: job 3 (out/3.txt)" in r.stderr
    assert (tmp_path / "out" / "4.txt").read_text().split()[-2:] == ["done", "4"]  # the others still ran
    r = bash(JOBS, "1", "2", cwd=tmp_path)  # one at a time: in the foreground, output on the terminal too
    assert r.returncode == 1 and "job 2 (out/2.txt)" in r.stderr and "done 1" in r.stdout
    r = bash(JOBS, "0", cwd=tmp_path)
    assert r.returncode == 1 and "must be a positive integer, got '0'" in r.stderr


RECIPE_STAGES = f"""
set -euo pipefail
stage=0; stop_stage=7; force=false; done_dir=exp/.done
run_job() {{ "$@"; }}
. {UTILS}/stage.sh
. {UTILS}/jobs.sh
. {UTILS}/recipe_stages.sh
"""


def test_recipe_stages_decoded_names_and_their_scoring(tmp_path):
    """A decodes entry names its decoded sets by a suffix or a ^FROM=TO prefix swap; stage 6 scores each decoded set
    with the metric and normaliser of the entry that named it."""
    script = RECIPE_STAGES + """
eval_sets=(st_dev st_test)
decodes=("transcript|^st_=asr_de_|wer|strip_accents" "translation:en||bleu" "transcript|_asr|cer")
for s in "${eval_sets[@]}"; do for d in "${decodes[@]}"; do IFS='|' read -r _ name _ <<< "$d"; decoded_name "$s" "$name"; done; done
for n in asr_de_test st_test st_test_asr asr_test; do echo "$n: $(score_args "$n" || echo "status $?")"; done
"""
    r = bash(script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "asr_de_dev", "st_dev", "st_dev_asr", "asr_de_test", "st_test", "st_test_asr",
        "asr_de_test: --metric wer --normalizer strip_accents", "st_test: --metric bleu", "st_test_asr: --metric cer",
        "asr_test: status 1"]  # a folder no entry names (a set dropped from the table): no metric to guess


def test_recipe_stages_background_jobs_mark_only_what_succeeded(tmp_path):
    """With recipe_jobs=true a stage's command runs as a pool job that writes the stage's marker when it succeeds;
    a failed job leaves no marker, so the next run does it again, and the pool names it."""
    script = RECIPE_STAGES + """
work() { echo "working on $1"; [ "$1" != bad ] || return 3; }
recipe_jobs=true
jobs_init 2
for e in good bad; do
  if done_dir=exp/.done/$e stage_begin 5 "decoding $e" -- "setting=1"; then
    done_dir=exp/.done/$e stage_job 5 "decoding $e" "exp/$e/decode.out" work "$e"
  fi
done
jobs_wait "stage 5: decoding"
"""
    r = bash(script, cwd=tmp_path)
    assert r.returncode == 1 and "stage 5: decoding failed: decoding bad (exp/bad/decode.out)" in r.stderr
    assert (tmp_path / "exp/.done/good/stage5").read_text().splitlines()[1:] == ["setting setting=1"]
    assert not (tmp_path / "exp/.done/bad/stage5").exists()
    assert (tmp_path / "exp/good/decode.out").read_text().startswith("working on good")
    r = bash(script, cwd=tmp_path)  # again: the good one is skipped, the bad one runs (and fails) again
    assert "stage 5 (decoding good): already done" in r.stderr and "decoding bad in the background" in r.stderr
    assert "decoding good in the background" not in r.stderr


def test_stage5_decodes_only_the_sets_a_config_has_not_decoded(tmp_path):
    """Stage 5's markers are per experiment, decoding config and set: a set added to the table is decoded alone, by
    one job per config; a decoding job that fails marks none of its sets, so the next run decodes them again."""
    (tmp_path / "exp" / "x").mkdir(parents=True)
    (tmp_path / "exp" / "x" / "last.pt").write_text("weights")
    for name in ("c1", "c2"):
        (tmp_path / f"{name}.yaml").write_text("decode: {}\n")
    script = RECIPE_STAGES + """
run_job() {
  echo "$*" | grep -o -e '--set [^=]*' -e '--decode-conf [^ ]*' -e --record-setting | paste -sd' ' - >> calls.txt
  [[ " $* " != *" ${FAIL:-none} "* ]]
}
rm -f calls.txt
tag=x feat_tag=f nproc=1 decode_opts="" targets=(transcript) decodes=("transcript||wer") extra_decode_opts=()
decode_conf_list=(c1.yaml c2.yaml)
read -r -a eval_sets <<< "$1"
recipe_jobs=true
jobs_init 1
stage_decode
jobs_wait "stage 5: decoding"
"""
    calls = tmp_path / "calls.txt"
    r = bash(script, "a b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert calls.read_text().splitlines() == ["--set a --set b --decode-conf c1.yaml",
                                     "--set a --set b --decode-conf c2.yaml --record-setting"]
    assert all((tmp_path / f"exp/.done/x/decode_{c}/{s}/stage5").is_file() for c in ("c1", "c2") for s in "ab")
    r = bash(script, "a b c", cwd=tmp_path, env={**os.environ, "FAIL": "c2.yaml"})  # a set added, c2's job fails
    assert r.returncode == 1 and "decoding x with c2 (exp/x/decode_c2.out)" in r.stderr
    assert calls.read_text().splitlines() == ["--set c --decode-conf c1.yaml",
                                              "--set c --decode-conf c2.yaml --record-setting"]
    assert "stage 5 (decoding a by x with c1): already done" in r.stderr
    assert (tmp_path / "exp/.done/x/decode_c1/c/stage5").is_file()
    assert not (tmp_path / "exp/.done/x/decode_c2/c/stage5").exists()
    r = bash(script, "a b c", cwd=tmp_path)  # c2 on c again, nothing else
    assert r.returncode == 0, r.stderr
    assert calls.read_text().splitlines() == ["--set c --decode-conf c2.yaml --record-setting"]


def test_stage6_leaves_a_set_dropped_from_the_table_as_it_was_scored(tmp_path):
    """A decoded set of an earlier table (another --test-sets) has no metric in this one: stage 6 neither guesses one
    (a BLEU set rescored as WER) nor drops it silently -- it logs the folder and leaves its result.txt."""
    for name in ("st_test", "st_old"):
        d = tmp_path / "exp" / "x" / "decode_flow" / name
        d.mkdir(parents=True)
        (d / "text").write_text("u1 a cat sat\\n")
        (d / "ref").write_text("u1 a cat sat\\n")
    (tmp_path / "exp" / "x" / "decode_flow" / "st_old" / "result.txt").write_text("BLEU 12.0 (scored before)\\n")
    script = RECIPE_STAGES + """
tag=x eval_sets=(st_test) decodes=("translation:en||bleu") results_out=""
stage_score
"""
    r = bash(script, cwd=tmp_path, env=venv_env())
    assert r.returncode == 0, r.stderr
    decoded = tmp_path / "exp" / "x" / "decode_flow"
    assert "BLEU" in (decoded / "st_test" / "result.txt").read_text()
    assert (decoded / "st_old" / "result.txt").read_text() == "BLEU 12.0 (scored before)\\n"
    assert "exp/x/decode_flow/st_old is no set of this run's table: not rescored" in r.stderr
