"""Hypothesis stateful test: random sequences of book / move / cancel / instructor placement
against a plain-Python model of the rules. After every step the database must equal the model
and every slot counter must equal its bookings and stay within capacity."""

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from booking import services
from booking.models import Booking, Slot
from harness import factories

STUDENTS = 4
SLOTS = 3
_exam_numbers = itertools.count()

student = st.integers(0, STUDENTS - 1)
slot_index = st.integers(0, SLOTS - 1)


class BookingMachine(RuleBasedStateMachine):
    @initialize(capacities=st.lists(st.integers(0, 3), min_size=SLOTS, max_size=SLOTS))
    def setup(self, capacities):
        number = next(_exam_numbers)
        self.instructor = factories.make_instructor(f"teacher{number}@example.org")
        exam = factories.make_exam(self.instructor)
        self.slots = []
        for capacity in capacities:
            self.slots += factories.make_slots(exam, 1, capacity=capacity)
        self.enrollments = factories.make_students(exam, STUDENTS, prefix=f"m{number}x")
        self.capacity = capacities
        self.model: dict[int, int] = {}  # student -> slot index

    def taken(self, slot: int) -> int:
        return sum(1 for s in self.model.values() if s == slot)

    def expect_seat(self, s: int, slot: int) -> str:
        """'ok' when the model has a free seat for student s in slot, else the refusal."""
        return "ok" if self.taken(slot) < self.capacity[slot] else "Unavailable"

    def call(self, action, *args, **kwargs) -> str:
        try:
            action(*args, **kwargs)
        except services.BookingError as exc:
            return type(exc).__name__
        return "ok"

    @rule(s=student, slot=slot_index)
    def book(self, s, slot):
        enrollment = self.enrollments[s]
        if s in self.model:
            expected = "ok" if self.model[s] == slot else "AlreadyBooked"
        else:
            expected = self.expect_seat(s, slot)
        outcome = self.call(
            services.book, enrollment, self.slots[slot].pk, actor=enrollment.student
        )
        assert outcome == expected
        if outcome == "ok":
            self.model[s] = slot

    @rule(s=student, slot=slot_index)
    def move(self, s, slot):
        enrollment = self.enrollments[s]
        if s not in self.model:
            expected = "NotFound"
        elif self.model[s] == slot:
            expected = "ok"
        else:
            expected = self.expect_seat(s, slot)
        outcome = self.call(
            services.move, enrollment, self.slots[slot].pk, actor=enrollment.student
        )
        assert outcome == expected
        if outcome == "ok":
            self.model[s] = slot

    @rule(s=student)
    def cancel(self, s):
        enrollment = self.enrollments[s]
        assert self.call(services.cancel, enrollment, actor=enrollment.student) == "ok"
        self.model.pop(s, None)

    @rule(s=student, slot=slot_index)
    def instructor_places(self, s, slot):
        expected = "ok" if self.model.get(s) == slot else self.expect_seat(s, slot)
        outcome = self.call(
            services.place, self.enrollments[s], self.slots[slot].pk, actor=self.instructor
        )
        assert outcome == expected
        if outcome == "ok":
            self.model[s] = slot

    @invariant()
    def database_equals_model(self):
        if not hasattr(self, "model"):
            return
        slot_ids = [s.pk for s in self.slots]
        student_of = {e.pk: index for index, e in enumerate(self.enrollments)}
        active = Booking.objects.filter(status=Booking.ACTIVE, slot_id__in=slot_ids)
        assert {student_of[b.enrollment_id]: slot_ids.index(b.slot_id) for b in active} == (
            self.model
        )
        for index, slot in enumerate(Slot.objects.filter(pk__in=slot_ids).order_by("pk")):
            assert slot.booked == self.taken(index) <= slot.capacity


@pytest.mark.django_db
def test_booking_rules_match_the_model():
    run_state_machine_as_test(
        BookingMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
