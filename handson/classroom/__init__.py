"""A whole class at once: a roster of students, each with an AWS account of their own.

``load_roster`` / ``check_roster`` read and check the roster CSV (before any account is
touched), ``provision`` runs the chapter notebooks once per student, ``status`` is the
class board, ``grade`` runs the exercises' self-checks in every account (a gradebook) and
``teardown_plan`` / ``teardown_class`` remove everything the kit made.
The same calls work on the sandbox (a student = an account on the local server) and on
real AWS (a student = an account reached by assuming a role).
"""

from __future__ import annotations

from handson.classroom.board import class_cost, status
from handson.classroom.grade import Gradebook, grade
from handson.classroom.provision import provision
from handson.classroom.roster import Roster, Student, check_roster, load_roster
from handson.classroom.teardown import teardown_class, teardown_plan

__all__ = [
    "Gradebook",
    "Roster",
    "Student",
    "check_roster",
    "class_cost",
    "grade",
    "load_roster",
    "provision",
    "status",
    "teardown_class",
    "teardown_plan",
]
