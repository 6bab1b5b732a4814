"""The Explore panels of the notebooks: one drawing function, a static figure and a live widget.

A notebook writes one ``draw(fig, **params)`` function that fills a matplotlib figure. From it,
:class:`Explorer` makes

- :meth:`Explorer.static`: the default state drawn on an ordinary (inline) figure, so the stored
  notebook shows it on GitHub, in nbviewer and on paper;
- :meth:`Explorer.show`: the controls beside one figure that is redrawn *in place* on every change
  (an ``ipympl`` canvas: no new image output, no re-layout of the notebook). Only this figure uses
  ``ipympl``; the rest of the notebook keeps the inline backend, so strict nbval stays stable.

A ``draw`` that raises does not leave the old figure standing: the figure is cleared and the error
text is shown in it and under it.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable

#: CSS class of every panel (the browser test finds the panels by it)
PANEL_CLASS = "nmc-explore"
#: CSS class of the error line under the figure (empty text while the last draw succeeded)
ERROR_CLASS = "nmc-explore-error"
#: the live figure: at most this wide (inches) at this resolution (dots per inch), beside the controls
LIVE_MAX_WIDTH_IN = 9.0
LIVE_DPI = 80


def _defaults(draw: Callable) -> dict:
    """Keyword defaults of ``draw`` after its first (figure) argument."""
    params = list(inspect.signature(draw).parameters.values())[1:]
    missing = [p.name for p in params if p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"draw function {draw.__name__}: give {missing} a default value (the static state)")
    return {p.name: p.default for p in params}


def _ipympl_canvas_classes():
    """ipympl's canvas and manager classes, leaving pyplot's backend as it was.

    Importing ``ipympl`` switches pyplot to its backend; the notebook's other figures must stay
    inline (strict nbval compares them), so the previous backend is restored at once.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    from ipympl.backend_nbagg import Canvas, FigureManager

    if matplotlib.get_backend() != previous:
        plt.switch_backend(previous)
    return Canvas, FigureManager


class Explorer:
    """Controls beside a figure that ``draw(fig, **params)`` fills; see the module docstring.

    Parameters
    ----------
    draw
        ``draw(fig, **params)``: draws on an empty :class:`matplotlib.figure.Figure`; may return a
        short text shown under the figure. Its keyword defaults are the static (default) state.
    figsize
        figure size (inches), the same for the static and the live figure.
    **controls
        one per parameter: an ipywidgets widget or an ``interact`` abbreviation such as
        ``(0, 10)``, ``(0.5, 4.0, 0.5)`` or a list of options.
    """

    def __init__(self, draw: Callable, figsize: tuple[float, float] = (6.0, 4.0), **controls):
        self.draw = draw
        self.figsize = tuple(figsize)
        self.defaults = _defaults(draw)
        unknown = sorted(set(controls) - set(self.defaults))
        if unknown:
            raise TypeError(f"controls {unknown} are not parameters of {draw.__name__}{tuple(self.defaults)}")
        self.controls = controls
        self.figure = None
        self.widget = None
        self.error_text = ""
        self.n_draws = 0

    def static(self, **params) -> None:
        """Draw the default state (or ``params`` over it) on an inline figure; show it and its text."""
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=self.figsize)
        text = self.draw(fig, **{**self.defaults, **params})
        plt.show()
        if text:
            print(text)

    def _control_widgets(self) -> dict:
        import ipywidgets

        made = {}
        for name, abbrev in self.controls.items():
            widget = abbrev
            if not isinstance(abbrev, ipywidgets.ValueWidget):
                widget = ipywidgets.interactive.widget_from_abbrev(abbrev, self.defaults[name])
                if widget is None:
                    raise ValueError(f"control {name}={abbrev!r}: not a widget nor an interact abbreviation")
            else:
                widget.value = self.defaults[name] if widget.value is None else widget.value
            widget.description = widget.description or name
            if hasattr(widget, "style") and hasattr(widget.style, "description_width"):
                widget.style.description_width = "initial"
            made[name] = widget
        return made

    def _live_figure(self):
        """A figure with an ipympl canvas (an ipywidget), or ``None`` without ipympl."""
        from matplotlib.figure import Figure

        scale = min(1.0, LIVE_MAX_WIDTH_IN / self.figsize[0])  # wide figures still fit beside the controls
        fig = Figure(figsize=(self.figsize[0] * scale, self.figsize[1] * scale), dpi=LIVE_DPI)
        try:
            Canvas, FigureManager = _ipympl_canvas_classes()
        except ImportError:
            return fig, None
        canvas = Canvas(fig)
        FigureManager(canvas, 0)
        canvas.header_visible = False
        canvas.footer_visible = False
        canvas.resizable = False
        canvas.toolbar_position = "left"
        return fig, canvas

    def redraw(self, **params) -> None:
        """Redraw the live figure for ``params`` (over the current control values)."""
        values = {name: w.value for name, w in self._widgets.items()}
        values = {**self.defaults, **values, **params}
        self.figure.clear()
        try:
            text = self.draw(self.figure, **values)
            self.error_text = ""
        except Exception as err:  # shown to the user instead of keeping a stale figure
            self.figure.clear()
            message = f"{type(err).__name__}: {err}"
            self.figure.text(
                0.5,
                0.5,
                f"draw failed for {values}\n{message}",
                ha="center",
                va="center",
                wrap=True,
                color="tab:red",
            )
            self.error_text = message
            text = None
            self._traceback = traceback.format_exc()
        self._text.value = f"<pre>{text}</pre>" if text else ""
        self._error.value = f"<pre style='color:#c00'>{self.error_text}</pre>" if self.error_text else ""
        self.n_draws += 1
        if self._canvas is not None:
            self.figure.canvas.draw_idle()
        else:
            self._show_inline()

    def _show_inline(self):
        from IPython.display import clear_output, display

        with self._output:
            clear_output(wait=True)
            display(self.figure)

    def show(self):
        """The live panel: controls on the left, the figure on the right (returns the widget)."""
        import ipywidgets

        self._widgets = self._control_widgets()
        self.figure, self._canvas = self._live_figure()
        self._text = ipywidgets.HTML()
        self._error = ipywidgets.HTML()
        self._error.add_class(ERROR_CLASS)
        self._output = ipywidgets.Output()
        plot = self._canvas if self._canvas is not None else self._output
        controls = ipywidgets.VBox(list(self._widgets.values()), layout=ipywidgets.Layout(min_width="260px"))
        right = ipywidgets.VBox([plot, self._text, self._error])
        self.widget = ipywidgets.HBox([controls, right], layout=ipywidgets.Layout(align_items="flex-start"))
        self.widget.add_class(PANEL_CLASS)
        for widget in self._widgets.values():
            widget.observe(lambda change: self.redraw(), names="value")
        self.redraw()
        return self.widget
