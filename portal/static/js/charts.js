/* Charts: every element with data-chart is drawn by ECharts from the JSON options in the data
 * block its data-chart-options names (<script type="application/json">, never executed; htmx
 * keeps such blocks in swapped content because allowScriptTags stays on, and runs none of
 * them: it evaluates only JavaScript types, which the CSP would refuse inline anyway).
 * When HTMX swaps content away its charts are disposed of (otherwise they leak and a chart
 * re-created on the same node stays blank: htmx issue 850); new content is drawn on
 * htmx:load. Charts follow the window's size. */
(function () {
  "use strict";

  function charts(root) {
    var found = [];
    if (root.matches && root.matches("[data-chart]")) {
      found.push(root);
    }
    if (root.querySelectorAll) {
      root.querySelectorAll("[data-chart]").forEach(function (el) { found.push(el); });
    }
    return found;
  }

  function draw(el) {
    if (echarts.getInstanceByDom(el)) {
      return;
    }
    var source = document.getElementById(el.getAttribute("data-chart-options"));
    if (!source) {
      return;
    }
    var options = JSON.parse(source.textContent);
    options.aria = Object.assign({ enabled: true }, options.aria || {});
    options.animation = false;
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(options);
  }

  function dispose(root) {
    charts(root).forEach(function (el) {
      var chart = echarts.getInstanceByDom(el);
      if (chart) {
        chart.dispose();
      }
    });
  }

  htmx.onLoad(function (root) { charts(root).forEach(draw); });
  document.addEventListener("htmx:beforeCleanupElement", function (evt) { dispose(evt.detail.elt); });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.shouldSwap && evt.detail.target) {
      dispose(evt.detail.target);
    }
  });

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) {
      clearTimeout(pending);
    }
    pending = setTimeout(function () {
      pending = null;
      charts(document.body).forEach(function (el) {
        var chart = echarts.getInstanceByDom(el);
        if (chart) {
          chart.resize();
        }
      });
    }, 150);
  });
})();
