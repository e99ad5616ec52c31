"""Verilator's own speed on the EIE array, with no cocotb, VPI or Python in the loop.

``python -m sim_tests.bare_throughput [--pes 64] [--threads 1] [--opt -O2]`` verilates the
array (``EIEConfig.paper(n_pes=...)``, unbaked) with a small C++ ``main`` that holds reset
for 10 cycles, then toggles ``clk`` for ``--cycles`` cycles calling ``eval()`` on each edge,
and prints simulated cycles per second. The array is idle (no image, no start), but a
Verilator model evaluates every always block on every clock edge whether or not its
inputs changed, so this is the ceiling of what any testbench driving the model can reach
(docs/rtl.md, "Throughput"). Not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from contract.config import EIEConfig
from sim_tests.runner import BUILD_ARGS, TOPLEVEL, verilator_env

_MAIN = """\
#include "V{top}.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
int main(int argc, char** argv) {{
  Verilated::commandArgs(argc, argv);
  long n = std::atol(argv[1]);
  auto* t = new V{top};
  t->clk = 0; t->rst = 1;
  for (int i = 0; i < 10; i++) {{ t->clk = 1; t->eval(); t->clk = 0; t->eval(); }}
  t->rst = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; i++) {{ t->clk = 1; t->eval(); t->clk = 0; t->eval(); }}
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%ld %.6f\\n", n, s);
  t->final();
  delete t;
  return 0;
}}
"""


def bare_throughput(config: EIEConfig, *, cycles: int = 200_000, threads: int = 1,
                    opt: str = "-O2", work_dir=None) -> dict:
    """Build the bare model of ``config`` and clock it; return cycles, seconds, cycles/s."""
    from rtl.verilog import generate

    verilator_env()
    with tempfile.TemporaryDirectory(prefix="bare_", dir=work_dir) as tmp:
        tmp = Path(tmp)
        verilog = generate(config, tmp / "rtl", name=TOPLEVEL)[0]
        main = tmp / "main.cpp"
        main.write_text(_MAIN.format(top=TOPLEVEL))
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", *BUILD_ARGS,
               "--top-module", TOPLEVEL, "-Mdir", str(tmp / "obj"),
               "-MAKEFLAGS", f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_SLOW=-O0",
               str(verilog), str(main)]
        if threads > 1:
            cmd += ["--threads", str(threads)]
        env = dict(os.environ)
        env.pop("MAKEFLAGS", None)
        build = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if build.returncode:
            raise RuntimeError(f"verilator build failed:\n{build.stdout[-3000:]}"
                               f"\n{build.stderr[-3000:]}")
        run = subprocess.run([str(tmp / "obj" / f"V{TOPLEVEL}"), str(int(cycles))],
                             capture_output=True, text=True, check=True)
        n, seconds = run.stdout.split()[:2]
    return {"cycles": int(n), "seconds": float(seconds),
            "cycles_per_second": int(n) / float(seconds)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--opt", default="-O2", help="C++ optimisation of the model")
    args = parser.parse_args()
    r = bare_throughput(EIEConfig.paper(n_pes=args.pes), cycles=args.cycles,
                        threads=args.threads, opt=args.opt)
    print(f"{args.pes} PEs (paper sizes), bare Verilator, {args.opt}, {args.threads} "
          f"thread(s): {r['cycles']} cycles in {r['seconds']:.2f} s = "
          f"{r['cycles_per_second']:.0f} cycles/s")
