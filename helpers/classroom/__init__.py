"""Classroom mode on nbgrader: a course directory, student copies, grading a class, a report and feedback.

    python -m helpers.classroom mark notebooks/*.ipynb       # nbgrader metadata on answer and read-only cells
    python -m helpers.classroom student [--course course]    # course/ set up, then nbgrader generate_assignment
    python -m helpers.classroom grade [--jobs N] [--student NAME] [ASSIGNMENT ...]   # autograde, then report
    python -m helpers.classroom report [--csv grades.csv]    # the grade report from nbgrader's gradebook
    python -m helpers.classroom points                       # points per notebook, autograded and by hand

nbgrader does the work it was built for: blanking solutions, clearing outputs, locking cells, running and
scoring hand-ins, the gradebook, feedback. What is added here is what nbgrader does not do: dropping the
cells tagged ``teacher-only`` (:class:`DropTeacherOnly`), grading only the exercises and what they use
(:class:`GradeOnlyExercises`) with time limits that fit them, checking each hand-in before nbgrader runs it,
grading many hand-ins at once (each in its own ``nbgrader autograde``, so one bad hand-in cannot stop the
others), a report of every rostered student, and feedback in plain words (:class:`PlainFeedback`).

One assignment per notebook, named after it (``05_smoothgrad``). The course directory's ``source/`` is a
copy of ``notebooks/``, refreshed by ``student``; nbgrader never writes to the teacher's notebooks.
"""
from .course import (CHECK_CALL, DropTeacherOnly, generate, mark_notebook, nbgrader, points, points_markdown,
                     set_up_course, write_config)
from .grading import GradeOnlyExercises, autograde_all, hand_in_problems, needed_cells, time_limit
from .report import PlainFeedback, grade, math_as_mathml, report

__all__ = ["CHECK_CALL", "DropTeacherOnly", "GradeOnlyExercises", "PlainFeedback", "autograde_all", "generate",
           "grade", "hand_in_problems", "mark_notebook", "math_as_mathml", "needed_cells", "nbgrader", "points",
           "points_markdown", "report", "set_up_course", "time_limit", "write_config"]
