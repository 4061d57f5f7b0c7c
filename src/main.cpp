#include "cli/cli.hpp"

int main(int argc, char** argv) { return xmetrics::cli::run(argc, argv); }
