"""Hidden tests of the grader fixture (tests/test_grading.py): each calls one function."""

from visgen.course.testing import check


def test_square(sub):
    check(sub.square(3) == 9, f"square(3) should be 9, got {sub.square(3)!r}")


def test_cube(sub):
    check(sub.cube(2) == 8, f"cube(2) should be 8, got {sub.cube(2)!r}")


def test_cube_negative(sub):
    check(sub.cube(-2) == -8, f"cube(-2) should be -8, got {sub.cube(-2)!r}")


def test_loop(sub):
    check(sub.loop() == 1, "loop() should return 1")


def test_stubborn(sub):
    check(sub.stubborn() == 1, "stubborn() should return 1")


def test_leave(sub):
    check(sub.leave() == 1, "leave() should return 1")


def test_hog(sub):
    check(sub.hog() == 1, "hog() should return 1")


def test_wipe(sub):
    check(sub.wipe() == 1, "wipe() should return 1")


def test_chatty(sub):
    check(sub.chatty() == 1, "chatty() should return 1")


def test_read_input(sub):
    check(sub.read_input() == "hello", "read_input() should return the file's text")
