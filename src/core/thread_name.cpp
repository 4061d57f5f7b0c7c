#include "core/thread_name.hpp"

#include <pthread.h>

#include <string>

namespace xmetrics::core {

void nameThisThread(std::string_view name) {
  std::string shortName(name.substr(0, 15));
  pthread_setname_np(pthread_self(), shortName.c_str());  // only fails for names over 15 bytes
}

}  // namespace xmetrics::core
