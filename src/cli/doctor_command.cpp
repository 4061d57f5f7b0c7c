// `xmetrics doctor`: the flags into doctor::Options, the walk, its report on stdout.

#include <iostream>

#include "cli/commands.hpp"
#include "doctor/doctor.hpp"

namespace xmetrics::cli {

int runDoctor(const DoctorOptions& options) {
  auto outcome = doctor::run(options, options.output == "json" ? doctor::OutputFormat::kJson
                                                               : doctor::OutputFormat::kText);
  std::cerr << outcome.error;
  std::cout << outcome.out;
  return outcome.exitCode;
}

}  // namespace xmetrics::cli
