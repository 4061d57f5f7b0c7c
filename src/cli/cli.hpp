#pragma once

namespace xmetrics::cli {

// Parses the command line (serve, status, doctor) and runs the command. Returns the exit code.
int run(int argc, char** argv);

}  // namespace xmetrics::cli
