"""Explore panels: a control redraws the same figure, a raising draw shows its error, pyplot stays."""

import ipywidgets
import matplotlib
import pytest

from helpers.widgets import ERROR_CLASS, PANEL_CLASS, Explorer


def _draw(fig, n=1, label="a"):
    if n == 3:
        raise ValueError("no fit below three particles")
    fig.add_subplot().plot(range(n + 1))
    return f"{label}: {n}"


def _descendants(widget):
    """Every widget in the tree that ``Explorer.show`` returns (what the user and the browser see)."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)


def _control(widget, name):
    """The control labelled ``name`` (its description) in a shown panel."""
    return next(w for w in _descendants(widget) if getattr(w, "description", None) == name)


def _html_lines(widget):
    """(text line, error line) under the figure: the HTML widgets, the error one found by its CSS class
    (``_dom_classes`` is ipywidgets' own trait behind add_class; it has no public getter)."""
    html = [w for w in _descendants(widget) if isinstance(w, ipywidgets.HTML)]
    errors = [w for w in html if ERROR_CLASS in w._dom_classes]
    texts = [w for w in html if ERROR_CLASS not in w._dom_classes]
    assert len(errors) == 1 and len(texts) == 1
    return texts[0], errors[0]


def test_a_control_redraws_the_same_figure_in_place():
    panel = Explorer(_draw, n=(0, 5), label=["a", "b"])
    widget = panel.show()
    figure, draws = panel.figure, panel.n_draws
    _control(widget, "n").value = 2
    assert panel.figure is figure and panel.n_draws == draws + 1
    text, _ = _html_lines(widget)
    assert len(figure.axes[0].lines[0].get_xdata()) == 3 and "a: 2" in text.value
    assert PANEL_CLASS in widget._dom_classes


def test_a_raising_draw_shows_its_error_instead_of_the_old_figure():
    panel = Explorer(_draw, n=(0, 5))
    widget = panel.show()
    _control(widget, "n").value = 3
    _, error = _html_lines(widget)
    assert panel.error_text == "ValueError: no fit below three particles"
    assert "no fit below" in error.value
    assert not panel.figure.axes and "no fit below" in panel.figure.texts[0].get_text()
    _control(widget, "n").value = 4
    assert panel.error_text == "" and error.value == "" and panel.figure.axes


def test_pyplot_keeps_its_backend_and_the_static_figure_uses_the_defaults(capsys):
    before = matplotlib.get_backend()
    panel = Explorer(_draw, n=ipywidgets.IntSlider(min=0, max=5, value=1))
    panel.show()
    assert matplotlib.get_backend() == before
    panel.static()
    assert capsys.readouterr().out == "a: 1\n"


def test_controls_must_match_parameters_with_defaults():
    with pytest.raises(TypeError, match="not parameters"):
        Explorer(_draw, m=(0, 1))
    with pytest.raises(TypeError, match="default value"):
        Explorer(lambda fig, n: None, n=(0, 1))
