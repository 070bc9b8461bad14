"""``python -m helpers.classroom``: the command line of :mod:`helpers.classroom`."""
import argparse
import os
from pathlib import Path

from . import __doc__ as DOC
from . import generate, grade, report
from .course import EXERCISE_TIMEOUT, ROOT, _mark_files, points_markdown


def main(argv=None):
    parser = argparse.ArgumentParser(description=DOC.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    mark = commands.add_parser("mark", help="add nbgrader metadata: read-only questions and set-up, answer cells")
    mark.add_argument("notebooks", nargs="+", type=Path)
    tally = commands.add_parser("points", help="points per notebook: autograded and graded by hand")
    tally.add_argument("notebooks", nargs="*", type=Path, default=sorted((ROOT / "notebooks").glob("*.ipynb")))
    for name, text in [("student", "set up the course directory and generate the student copies"),
                       ("grade", "autograde every hand-in in course/submitted/ (runs the learners' code: sandbox it)"),
                       ("report", "the grade report from the gradebook")]:
        command = commands.add_parser(name, help=text)
        command.add_argument("--course", type=Path, default=ROOT / "course")
        if name == "student":
            command.add_argument("notebooks", nargs="*", type=Path,
                                 default=sorted((ROOT / "notebooks").glob("*.ipynb")))
        else:
            command.add_argument("assignments", nargs="*")
            command.add_argument("--csv", type=Path, help="also write one row per student and cell to this file, "
                                 "and one row per student with the totals to <name>-totals.csv")
        if name == "grade":
            command.add_argument("--timeout", type=int,
                                 help=f"seconds for each exercise cell (default {EXERCISE_TIMEOUT})")
            command.add_argument("--jobs", type=int, default=1, help="students graded at once (e.g. the cores)")
            command.add_argument("--student", action="append", dest="students",
                                 help="grade only this student (repeat for several), e.g. a late hand-in")
            command.add_argument("--all-cells", action="store_true",
                                 help="run every cell of each hand-in, the chapter's demonstrations too")
    args = parser.parse_args(argv)
    if args.command == "mark":
        _mark_files(args.notebooks)
    elif args.command == "points":
        print(points_markdown(args.notebooks))
    elif args.command == "student":
        for path in generate(args.course, args.notebooks):
            print("wrote", path)
    elif args.command == "grade":
        grade(args.course, args.assignments or None, args.timeout, jobs=args.jobs, students=args.students,
              run_everything=args.all_cells)
        if args.csv:
            report(args.course, args.assignments or None, args.csv, out=open(os.devnull, "w"))
    else:
        report(args.course, args.assignments or None, args.csv)


if __name__ == "__main__":
    main()
