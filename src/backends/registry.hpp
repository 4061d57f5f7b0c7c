#pragma once

// backends/: the Backend interface the poller calls (backend.hpp), the registry of the backends
// compiled into this build (this header) and one folder per backend (datadog/, prometheus/,
// embedded/), each registering its name, its rows of the settings table and its factory from a
// register.cpp of its own. A backend may include core/, query/, http/ and config/ (for its
// settings rows); never server/, poller/ or anything above them.
//
// The list of backends is explicit, not static initializers (a linker drops an unreferenced
// object file of a static library, and with it such a registration): CMake writes registered.cpp
// from the XMETRICS_BACKEND_<NAME> options, calling <name>::registerBackend() of each enabled one.

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"
#include "config/serve_options.hpp"

namespace xmetrics::tsdb {
class TimeSeriesStore;
}  // namespace xmetrics::tsdb

namespace xmetrics::backends {

// What a factory may use besides the settings: the in-process parts a backend shares with the rest
// of the process.
struct BackendContext {
  const config::ServeOptions& options;
  // The embedded store, which the DogStatsD listener feeds. Never null.
  std::shared_ptr<tsdb::TimeSeriesStore> timeSeries;
};

// Builds a running backend; the error names the setting to fix.
using MakeBackend = std::function<std::expected<BackendPtr, std::string>(const BackendContext&)>;

struct BackendRegistration {
  std::string name;  // as `backend`, `backends` and the metrics setting name it
  // Its settings: the rows of the settings table and the defaults of the struct they fill
  // (read it with config::backendSettings<T>(options, name)).
  config::BackendSettings settings;
  MakeBackend make;
};

class BackendRegistry {
 public:
  // Registration order is the order names are listed in (help, errors).
  void add(BackendRegistration registration);

  std::vector<std::string> names() const;
  // Every backend's settings, for the option parser, --help and the docs check.
  std::vector<config::BackendSettings> settings() const;
  std::expected<BackendPtr, std::string> make(std::string_view name,
                                              const BackendContext& context) const;

 private:
  std::vector<BackendRegistration> registrations_;
};

// The backends of this build (registered.cpp, generated).
const BackendRegistry& registeredBackends();

}  // namespace xmetrics::backends
