// The staff dashboard's stacked charts (Chart.js, served from our static files). Each series gets a colour AND a
// fill pattern (stripes, dots, cross-hatch, ...) so the stacks read without colour; every chart also has a table.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const colours = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6d597a", "#457b9d", "#8d99ae", "#bc4749"];
  const patterns = ["solid", "diagonal", "dots", "cross", "horizontal", "vertical", "reverse", "grid", "zigzag"];

  function pattern(colour, kind) {
    const size = 10, canvas = document.createElement("canvas");
    canvas.width = canvas.height = size;
    const c = canvas.getContext("2d");
    c.fillStyle = colour; c.fillRect(0, 0, size, size);
    c.strokeStyle = "rgba(255,255,255,0.85)"; c.fillStyle = "rgba(255,255,255,0.85)"; c.lineWidth = 2;
    const line = (x1, y1, x2, y2) => { c.beginPath(); c.moveTo(x1, y1); c.lineTo(x2, y2); c.stroke(); };
    if (kind === "diagonal") { line(0, size, size, 0); }
    else if (kind === "reverse") { line(0, 0, size, size); }
    else if (kind === "dots") { c.beginPath(); c.arc(5, 5, 2, 0, 2 * Math.PI); c.fill(); }
    else if (kind === "cross") { line(0, size, size, 0); line(0, 0, size, size); }
    else if (kind === "horizontal") { line(0, 5, size, 5); }
    else if (kind === "vertical") { line(5, 0, 5, size); }
    else if (kind === "grid") { line(0, 5, size, 5); line(5, 0, 5, size); }
    else if (kind === "zigzag") { line(0, 7, 5, 3); line(5, 3, 10, 7); }
    return c.createPattern(canvas, "repeat");
  }

  const dollars = (micros) => "$" + (micros / 1e6).toFixed(2);

  function draw(name, money) {
    const canvas = document.getElementById("chart-" + name);
    if (!canvas || !data[name]) return;
    const chart = data[name];
    const names = Object.keys(chart.series);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.days.map((day) => day.slice(5)),
        datasets: names.map((label, i) => ({
          label: label,
          data: chart.series[label],
          backgroundColor: pattern(colours[i % colours.length], patterns[i % patterns.length]),
          borderColor: colours[i % colours.length],
          borderWidth: 1,
        })),
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { callback: (v) => (money ? dollars(v) : v) } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 18 } },
          tooltip: { callbacks: { label: (item) => item.dataset.label + ": " + (money ? dollars(item.raw) : item.raw) } },
        },
      },
    });
    canvas.dataset.rendered = "true";
    const box = document.querySelector('details[data-table="' + name + '"] .scroll');
    const table = document.createElement("table");
    const head = "<tr><th>day</th>" + names.map((n) => "<th>" + n.replace(/</g, "&lt;") + "</th>").join("") + "</tr>";
    const rows = chart.days.map((day, d) =>
      "<tr><td>" + day + "</td>" + names.map((n) => "<td>" + (money ? dollars(chart.series[n][d]) : chart.series[n][d]) + "</td>").join("") + "</tr>");
    table.innerHTML = "<thead>" + head + "</thead><tbody>" + rows.join("") + "</tbody>";
    box.appendChild(table);
  }

  draw("by_model", true);
  draw("by_tenant", true);
  draw("failures", false);
})();
