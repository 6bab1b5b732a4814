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


def test_a_control_redraws_the_same_figure_in_place():
    panel = Explorer(_draw, n=(0, 5), label=["a", "b"])
    widget = panel.show()
    figure, draws = panel.figure, panel.n_draws
    panel._widgets["n"].value = 2
    assert panel.figure is figure and panel.n_draws == draws + 1
    assert len(figure.axes[0].lines[0].get_xdata()) == 3 and "a: 2" in panel._text.value
    assert PANEL_CLASS in widget._dom_classes


def test_a_raising_draw_shows_its_error_instead_of_the_old_figure():
    panel = Explorer(_draw, n=(0, 5))
    panel.show()
    panel._widgets["n"].value = 3
    assert panel.error_text == "ValueError: no fit below three particles"
    assert ERROR_CLASS in panel._error._dom_classes and "no fit below" in panel._error.value
    assert not panel.figure.axes and "no fit below" in panel.figure.texts[0].get_text()
    panel._widgets["n"].value = 4
    assert panel.error_text == "" and panel._error.value == "" and panel.figure.axes


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
