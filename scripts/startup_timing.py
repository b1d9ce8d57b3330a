"""Start-up: a whole ``einderiv diff`` process against ``python -c "import numpy, opt_einsum"``.

    python scripts/startup_timing.py PATH/TO/VENV/bin/python [N]

Byte-compiles the installed package first, removes PYTHONDONTWRITEBYTECODE for the runs, runs
each command N times (default 7) interleaved, and prints the minimum wall and CPU time of each
as a Markdown table with ratios to the first.
"""
import os, subprocess, sys, time, resource
py = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 7
env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
cmds = {"python -c 'import numpy, opt_einsum'": [py, "-c", "import numpy, opt_einsum"],
        "einderiv diff 'F[i,k] = W[i,j] X[j,k]' --wrt W": [os.path.join(os.path.dirname(py), "einderiv"), "diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"],
        "python -m einderiv diff ...": [py, "-m", "einderiv", "diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"]}
subprocess.run([py, "-m", "compileall", "-q", os.path.dirname(subprocess.check_output([py, "-c", "import einderiv,os;print(os.path.dirname(einderiv.__file__))"], text=True).strip())], env=env)
wall = {k: [] for k in cmds}; cpu = {k: [] for k in cmds}
for _ in range(n):
    for k, c in cmds.items():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter(); subprocess.run(c, env=env, stdout=subprocess.DEVNULL, check=True); w = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall[k].append(w); cpu[k].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
base = list(cmds)[0]
print(f"| command | wall min of {n} (ms) | ratio | CPU min (ms) | ratio |\n| --- | --- | --- | --- | --- |")
for k in cmds:
    print(f"| `{k}` | {1e3*min(wall[k]):.1f} | {min(wall[k])/min(wall[base]):.2f}× | {1e3*min(cpu[k]):.1f} | {min(cpu[k])/min(cpu[base]):.2f}× |")
