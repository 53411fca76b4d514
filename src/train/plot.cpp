#include "ssm/train/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ssm/core/error.h"

namespace ssm::train {

namespace {
constexpr double kPanelW = 420, kPanelH = 300, kMargin = 50;
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};

std::string panel_svg(const Panel& p, double x0) {
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : p.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  std::string out;
  const double left = x0 + kMargin, top = 30, w = kPanelW - kMargin - 10, h = kPanelH - 80;
  out += fmt::format("<text x='{}' y='20' font-size='14' text-anchor='middle'>{}</text>\n",
                     left + w / 2, p.title);
  out += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#888'/>\n",
                     left, top, w, h);
  if (!std::isfinite(xmin)) return out;
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  auto sx = [&](double x) { return left + (x - xmin) / (xmax - xmin) * w; };
  auto sy = [&](double y) { return top + h - (y - ymin) / (ymax - ymin) * h; };
  for (int k = 0; k <= 4; ++k) {
    const double yv = ymin + (ymax - ymin) * k / 4, xv = xmin + (xmax - xmin) * k / 4;
    out += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='end'>{:.3g}</text>\n",
                       left - 4, sy(yv) + 3, yv);
    out += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='middle'>{:.0f}</text>\n",
                       sx(xv), top + h + 14, xv);
  }
  out += fmt::format("<text x='{}' y='{}' font-size='11' text-anchor='middle'>{}</text>\n",
                     left + w / 2, top + h + 30, p.x_label);
  for (size_t si = 0; si < p.series.size(); ++si) {
    const auto& s = p.series[si];
    const char* color = kColors[si % 5];
    std::string pts;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) pts += fmt::format("{:.1f},{:.1f} ", sx(s.x[i]), sy(s.y[i]));
    out += fmt::format("<polyline fill='none' stroke='{}' stroke-width='1.5' points='{}'/>\n", color,
                       pts);
    out += fmt::format("<text x='{}' y='{}' font-size='11' fill='{}'>{}</text>\n", left + 8,
                       top + 14 + 14 * si, color, s.name);
  }
  return out;
}
}  // namespace

void write_svg_plot(const std::string& path, const std::vector<Panel>& panels) {
  const double width = kPanelW * std::max<size_t>(1, panels.size());
  std::string svg = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n",
      width, kPanelH);
  for (size_t i = 0; i < panels.size(); ++i) svg += panel_svg(panels[i], kPanelW * i);
  svg += "</svg>\n";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    SSM_CHECK(out.good(), "plot: cannot write '{}'", tmp);
    out << svg;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ssm::train
