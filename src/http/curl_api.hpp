#pragma once

#include <curl/curl.h>

#include <string>

namespace xmetrics::http {

// libcurl, loaded on first use. Standalone xmetrics (embedded backend, no cluster) never makes an
// outbound call, and libcurl drags in some 25 shared libraries (Kerberos, LDAP, GnuTLS, SSH):
// loading them only when needed keeps an idle process about 4 MB smaller.
struct CurlApi {
  CURLcode (*global_init)(long);
  CURLSH* (*share_init)();
  CURLSHcode (*share_setopt)(CURLSH*, CURLSHoption, ...);
  CURLSHcode (*share_cleanup)(CURLSH*);
  CURL* (*easy_init)();
  void (*easy_reset)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  curl_version_info_data* (*version_info)(CURLversion);
};

// @return never null; exits the process with a clear message if libcurl cannot be loaded (the
// Debian package libcurl4 provides it; scripts/setup installs it).
const CurlApi& curl();

}  // namespace xmetrics::http
