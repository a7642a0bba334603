"""The Multipick configuration: 16 deltas along one belt, 16 objects/s, ~1 pick/s each.

    python msseg_ros/benchmarks/multipick.py [--robots 16] [--rate 16] [--duration 60] [--seed 0]

Feeds one Poisson arrival sequence (objects uniform across the belt, candidates 1.5 s
after the scanner, as on the sim line) to the bridge's scheduler and emulated delta
controllers on a simulated clock (msseg_ros.core.robots.linesim), and compares the
fraction picked with an offline upper bound computed from the same arrivals (a maximum
matching of objects to robot cycle slots). Prints the ratio, measured in one run.
"""
import argparse
import time

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.core.robots.cell import Speeds, line_robots
from msseg_ros.core.robots.kinematics import DeltaGeometry
from msseg_ros.core.robots.linesim import arrivals, simulate, upper_bound


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robots", type=int, default=16)
    ap.add_argument("--rate", type=float, default=16.0, help="objects/s")
    ap.add_argument("--duration", type=float, default=60.0, help="s of arrivals")
    ap.add_argument("--belt-speed", type=float, default=1.0, help="m/s")
    ap.add_argument("--max-in-flight", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    add_json_argument(ap)
    args = ap.parse_args()
    geo = DeltaGeometry()
    robots = line_robots(args.robots, first_x=2.0, spacing=0.7, geometry=geo)
    speeds = Speeds()
    objs = arrivals(args.rate, args.duration, args.belt_speed, 0.548, delay=1.5, seed=args.seed)
    t0 = time.perf_counter()
    res = simulate(robots, speeds, objs, args.belt_speed, max_in_flight=args.max_in_flight, geometry=geo)
    t1 = time.perf_counter()
    bound = upper_bound(robots, speeds, objs, args.belt_speed)
    t2 = time.perf_counter()
    rates = [n / args.duration for n in res.by_robot.values()]
    print(f"robots {args.robots}, {args.rate:g} objects/s, belt {args.belt_speed:g} m/s, {args.duration:g} s: "
          f"{res.objects} objects")
    print(f"picked (scheduler + emulated controllers): {res.picked} = {res.fraction:.3f} of the objects")
    print(f"offline upper bound:                       {bound} = {bound / res.objects:.3f} of the objects")
    print(f"ratio picked / upper bound:                {res.picked / bound:.3f}")
    print(f"picks/s per robot: mean {sum(rates) / len(rates):.2f}, min {min(rates):.2f}, max {max(rates):.2f}")
    print(f"not assigned, by reason: {res.unpicked}; controller outcomes of the picks sent: {res.outcomes}")
    print(f"(simulation {t1 - t0:.1f} s, bound {t2 - t1:.1f} s of CPU)")
    emit("multipick", {"picked_over_upper_bound": res.picked / bound},
         {"objects": res.objects, "picked": res.picked, "upper_bound": bound,
          "picks_per_s_per_robot": round(sum(rates) / len(rates), 3)}, args.json)


if __name__ == "__main__":
    main()
