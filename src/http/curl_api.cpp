#include "http/curl_api.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace xmetrics::http {
namespace {

template <typename Fn>
void bind(void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (!fn) {
    std::fprintf(stderr, "fatal: libcurl.so.4 has no %s\n", name);
    std::exit(1);
  }
}

CurlApi load() {
  void* library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    std::fprintf(
        stderr,
        "fatal: cannot load libcurl.so.4 (%s); it is needed to reach Kubernetes and remote "
        "backends: install the Debian package libcurl4\n",
        dlerror());
    std::exit(1);
  }
  CurlApi api{};
  bind(library, "curl_global_init", api.global_init);
  bind(library, "curl_share_init", api.share_init);
  bind(library, "curl_share_setopt", api.share_setopt);
  bind(library, "curl_share_cleanup", api.share_cleanup);
  bind(library, "curl_easy_init", api.easy_init);
  bind(library, "curl_easy_reset", api.easy_reset);
  bind(library, "curl_easy_setopt", api.easy_setopt);
  bind(library, "curl_easy_perform", api.easy_perform);
  bind(library, "curl_easy_getinfo", api.easy_getinfo);
  bind(library, "curl_easy_cleanup", api.easy_cleanup);
  bind(library, "curl_easy_strerror", api.easy_strerror);
  bind(library, "curl_slist_append", api.slist_append);
  bind(library, "curl_slist_free_all", api.slist_free_all);
  bind(library, "curl_version_info", api.version_info);
  api.global_init(CURL_GLOBAL_DEFAULT);
  return api;
}

}  // namespace

const CurlApi& curl() {
  static const CurlApi api = load();  // thread-safe once
  return api;
}

}  // namespace xmetrics::http
