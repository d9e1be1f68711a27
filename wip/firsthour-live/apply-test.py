import re, shutil
root='/tmp/firsthour-iso/'
shutil.copy('/tmp/firsthour-live/live.py', root+'compiler/local/live.py')
p=root+'compiler/local/run.py'
s=open(p).read()
a='''    progress = Console(stderr=as_json, highlight=False, soft_wrap=True)
    outcome = execute(prepared, Progress(progress, prepared.plan), quiet_stdout=as_json, timeout_s=timeout_s)
    summary = outcome.summary
    if as_json:
        sys.stdout.write(json.dumps(summary.as_json(), indent=2, default=repr) + "\\n")
        sys.stdout.flush()
    else:
        print_summary(progress, summary)'''
b='''    # Progress, the live line and the summary are for people: stderr (silent under -q on success);
    # stdout holds only --json's document.
    progress = console.rich_stderr()
    watched = LiveProgress(progress, prepared.plan)
    with live_line(watched):
        outcome = execute(prepared, watched, quiet_stdout=True, timeout_s=timeout_s)
    summary = outcome.summary
    if as_json:
        sys.stdout.write(json.dumps(summary.as_json(), indent=2, default=repr) + "\\n")
        sys.stdout.flush()
    else:
        print_summary(progress if summary.ok else console.rich_stderr(silent_when_quiet=False), summary)'''
assert a in s, "run.py changed"
s=s.replace(a,b)
s=s.replace("from compiler.config import Project\n","from compiler import console\nfrom compiler.config import Project\n",1)
s=s.replace("from compiler.local.prepare import","from compiler.local.live import LiveProgress, live_line\nfrom compiler.local.prepare import",1)
a2 = "Supervisor(project.python, run_dir, Path.cwd(), OutputSink())"
assert a2 in s, "execute changed"
s=s.replace(a2, "Supervisor(project.python, run_dir, Path.cwd(), OutputSink(getattr(progress, \"child_stream\", lambda: None)()))")
open(p,'w').write(s)
print("applied")
