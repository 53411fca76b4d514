#pragma once
// Writes training curves as a self-contained SVG (no plotting library needed to view it).
#include <string>
#include <vector>

namespace ssm::train {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct Panel {
  std::string title, x_label;
  std::vector<Series> series;
};

// Panels side by side; the file is written atomically.
void write_svg_plot(const std::string& path, const std::vector<Panel>& panels);

}  // namespace ssm::train
