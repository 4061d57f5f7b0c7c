#pragma once

#include <ostream>
#include <string>
#include <vector>

// What the table-printing commands (status, query) share.
namespace xmetrics::cli {

// Rows printed in columns two spaces apart, each as wide as its widest cell; the first row is the
// header. Every row has the header's number of cells.
void printAligned(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

}  // namespace xmetrics::cli
