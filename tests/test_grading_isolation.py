"""One wrong function loses exactly its own points, for every graded function of every homework
that another graded function calls; and a realistic mistake per homework is caught.

The calls between graded functions are read from each homework's solution source (`ast`). A
function's *level* is 0 when it calls no graded function, else one more than the highest level
it calls, so a call always goes from a higher level to a lower one. A wrong function is the
solution's with every number of its result 1 % + 0.01 off (a plausible wrong answer, no
exception), or, for one function per homework, a mistake students make (`MISTAKES`).

Per homework, notebook "all": every called function wrong (and the realistic mistake); its
items must be lost and every item of a function that calls them but is not called itself must
keep its points. Then, for each level L ≥ 1 of the functions that both call and are called,
notebook "L": every called function below level L wrong; those at level L must keep their
points. Every call "C calls G" is thus checked with G wrong and C correct — what "G wrong alone
costs only G's points" needs — and each expensive check (a trained bar) runs once. Only the
items involved are graded.
"""

import ast
import textwrap

import nbformat
import pytest

from visgen.course.build import homework_notebook
from visgen.course.grade import grade
from visgen.course.homework import list_homeworks, load_homework
from visgen.course.notebook import read_source, write_notebook


def _calls(hw) -> dict[str, set[str]]:
    """graded function → the other graded functions its solution calls."""
    graded = {f for it in hw.items for f in it.functions}
    source = "\n".join(c.source for c in read_source(hw.source_path).cells if c.cell_type == "code")
    calls = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name in graded:
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            calls[node.name] = (names & graded) - {node.name}
    return calls


def _levels(calls: dict[str, set[str]]) -> dict[str, int]:
    levels = {}

    def level(f, seen=()):
        if f in seen:
            raise AssertionError(f"graded functions call each other in a cycle: {seen}")
        if f not in levels:
            levels[f] = 1 + max((level(g, (*seen, f)) for g in calls.get(f, ())), default=-1)
        return levels[f]

    for f in calls:
        level(f)
    return levels


def _cases():
    """(homework, notebook label, the functions made wrong, the functions that must pass)."""
    cases = []
    for name in list_homeworks():
        calls = _calls(load_homework(name))
        called = {g for gs in calls.values() for g in gs}
        levels = _levels(calls)
        top = {c for c, gs in calls.items() if gs and c not in called}
        cases.append((name, "all", sorted(called), sorted(top)))
        middle = {c for c, gs in calls.items() if gs and c in called}
        for level in sorted({levels[c] for c in middle}):
            wrong = sorted(g for g in called if levels[g] < level)
            cases.append((name, level, wrong, sorted(c for c in middle if levels[c] == level)))
    return cases


CASES = _cases()

PERTURB = '''
def vg_perturbed(value):
    """A plausible wrong answer: the correct result with every number a little off."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return ~value
        return value * 1.01 + 0.01 if value.is_floating_point() else value + 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value * 1.01 + 0.01
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple | list):
        return type(value)(vg_perturbed(v) for v in value)
    if isinstance(value, dict):
        return {k: vg_perturbed(v) for k, v in value.items()}
    return value
'''


def _wrong(functions: list[str]) -> str:
    cell = PERTURB
    for f in functions:
        original = f"ORIGINAL_{f.upper()}"
        cell += textwrap.dedent(
            f"""

            {original} = {f}


            def {f}(*args, **kwargs):
                return vg_perturbed({original}(*args, **kwargs))
            """
        )
    return cell


# One realistic mistake per homework (what students get wrong), graded on its item and the
# items of the functions that call it: the hidden tests must catch it, and only its item.
MISTAKES = {
    "hw1": (
        "ddpm_step",
        '''
def ddpm_step(eps_model, x, k, betas, alphas_bar, noise):
    """Uses the forward variance β_k instead of the posterior variance β̃_k."""
    eps = eps_model(x, torch.full((x.shape[0],), k / len(betas), dtype=x.dtype))
    beta, abar = betas[k - 1].item(), alphas_bar[k - 1].item()
    mean = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
    return mean if k == 1 else mean + math.sqrt(beta) * noise
''',
    ),
    "hw2": (
        "dpm1_step",
        '''
def dpm1_step(v_fn, x, t, s):
    """The plain ε-form, which is singular at t = 1."""
    eps, _ = fm_eps_x0(v_fn(x, t), x, t)
    lam = lambda u: math.log((1 - u) / u) if 0 < u < 1 else math.copysign(math.inf, 0.5 - u)
    h = lam(s) - lam(t)
    return (1 - s) / (1 - t) * x - s * math.expm1(h) * eps if t < 1 else x * math.nan
''',
    ),
    "hw3": (
        "drop_labels",
        '''
def drop_labels(y, p, generator=None):
    """Uses label 0 as the "no label" class (and forgets the generator)."""
    return torch.where(torch.rand(y.shape[0]) < p, torch.zeros_like(y), y)
''',
    ),
    "hw4": (
        "consistency_sample",
        '''
def consistency_sample(f, x, ts, schedule, generator=None):
    """Re-noises x̂0 to the current level instead of the next one."""
    ts = [float(t) for t in ts]
    for i, t in enumerate(ts[:-1]):
        x0 = f(x, t)
        if ts[i + 1] == 0:
            return x0
        x = q_sample(x0, t, torch.randn(x.shape, generator=generator, dtype=x.dtype), schedule)
    return x
''',
    ),
    "hw5": (
        "mmd_rbf",
        '''
def mmd_rbf(x, y, sigma):
    """The biased V-statistic: self-pairs kept in the within-set means."""
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))
    return k(x, x).mean((-1, -2)) + k(y, y).mean((-1, -2)) - 2 * k(x, y).mean((-1, -2))
''',
    ),
    "hw7": (
        "generate_video",
        '''
def generate_video(model, encode, cond, shape, chunk, ts, generator=None, context=None,
                   window=None, sink=0):
    """Places each chunk at the frames the cache holds (its fill level) instead of its absolute
    frame index: right until the rolling cache first evicts."""
    batch, frames = shape[0], shape[1]
    text = encode(cond)
    past, video, start, tokens = None, [], 0, None
    if context is not None:
        start = context.shape[1]
        _, past = model(context, 0.0, None, start_frame=0, text=text)
        tokens = past[0][0].shape[-2] // start
        if window is not None:
            past = roll_cache(past, window * tokens, sink * tokens)
        video.append(context)
    for s in range(start, frames, chunk):
        noise = torch.randn((batch, chunk, *shape[2:]), generator=generator)
        held = 0 if past is None else past[0][0].shape[-2] // tokens
        x, past = generate_chunk(model, noise, ts, past, held, text, generator)
        tokens = tokens or past[0][0].shape[-2] // chunk
        if window is not None:
            past = roll_cache(past, window * tokens, sink * tokens)
        video.append(x)
    return torch.cat(video, 1)
''',
    ),
}


def _grade(name, wrong: list[str], check: list[str], tmp_path):
    """Grade the solution with ``wrong`` made wrong, on their items and those of ``check``."""
    hw = load_homework(name)
    item_of = {f: it for it in hw.items for f in it.functions}
    cell = _wrong([f for f in wrong if MISTAKES[name][0] != f])
    if MISTAKES[name][0] in wrong:
        cell += MISTAKES[name][1]
    lose = {item_of[f].id for f in wrong}
    keep = {item_of[c].id for c in check} - lose
    hw.items = [it for it in hw.items if it.id in lose | keep]
    nb = homework_notebook(hw, starter=False)
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    path = tmp_path / f"{hw.notebook}.ipynb"
    write_notebook(nb, path)
    return lose, grade(hw, path)


def test_every_called_function_is_covered():
    """The cases (a regression guard for the AST reading and the levels)."""
    by = {(name, label): (wrong, check) for name, label, wrong, check in CASES}
    assert "q_sample" in by["hw1", "all"][0] and by["hw1", "all"][1] == ["ddpm_loss", "ddpm_sample"]
    assert by["hw2", 2] == (["dpm1_step", "dpm2m_step", "euler_step", "fm_eps_x0"], ["dpm2_step"])
    assert by["hw4", 1] == (["cfg_x0_eps", "pseudo_huber", "q_sample"], ["ddim_step"])
    assert "teacher_features" in by["hw5", "all"][0] and "ladd_step" in by["hw5", "all"][1]
    assert by["hw7", "all"] == (
        ["generate_chunk", "roll_cache", "sample_chunk"],
        ["generate_video"],
    )
    assert by["hw7", 1] == (["roll_cache", "sample_chunk"], ["generate_chunk"])
    assert set(MISTAKES) == set(list_homeworks())


@pytest.mark.parametrize(
    "name, label, wrong, check", CASES, ids=[f"{n}-{label}" for n, label, _, _ in CASES]
)
def test_one_wrong_function_loses_exactly_its_points(name, label, wrong, check, tmp_path):
    mistake = MISTAKES[name][0]
    first = next(lb for n, lb, _, chk in CASES if n == name and mistake not in chk)
    if label == first:  # the realistic mistake too, where no check needs that function right
        wrong = sorted({*wrong, mistake})
    lose, report = _grade(name, wrong, check, tmp_path)
    status = {r.item.id: r.status for r in report.items}
    assert {i for i, s in status.items() if s != "passed"} == lose, report.format_table()
    assert all(status[i] == "failed" for i in lose), report.format_table()
    assert report.notes == [], report.notes


def test_teacher_features_must_remove_its_hook_when_the_network_raises(tmp_path):
    """hw5's exception path is exercised: a teacher_features that removes its hook only when
    the network returns (no try/finally) loses its item, and only its item."""
    leaky = """
def teacher_features(net, layer, x, t, y):
    net.requires_grad_(False)
    seen = []
    handle = net.get_submodule(layer).register_forward_hook(lambda m, i, out: seen.append(out))
    net(x, t, y)
    handle.remove()
    return seen[-1]
"""
    hw = load_homework("hw5")
    hw.items = [hw.item_of_function("teacher_features")]
    nb = homework_notebook(hw, starter=False)
    nb.cells.append(nbformat.v4.new_code_cell(leaky))
    path = tmp_path / f"{hw.notebook}.ipynb"
    write_notebook(nb, path)
    report = grade(hw, path)
    assert report.score == 0 and report.items[0].status == "failed", report.format_table()
    reason = report.items[0].reasons[0]
    assert "when the network raises, teacher_features must still remove its hook" in reason
