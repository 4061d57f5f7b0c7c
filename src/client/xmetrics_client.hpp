#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <vector>

#include "kube/kube_config.hpp"

// client/: the HTTPS client of xmetrics' own API (status, config, logs, /metrics, /readyz) as
// status, doctor and flare read it. May include core/ and kube/ (the kubeconfig reader) only:
// it knows nothing of the server's types, so a reader never links the server.
namespace xmetrics::client {

// How the CLI commands (status, flare, doctor) reach a running `xmetrics serve`.
struct Endpoint {
  std::string server;      // https://host:port
  std::string caPem;       // CAs to trust; empty: the system store
  std::string verifyName;  // the name the serving certificate must carry; empty: the URL's host
  bool insecureSkipVerify = false;
  std::string certPem, keyPem;  // client certificate, presented unless there is a token
  std::string token;            // bearer token
};

// A whole file, for PEM files a flag or kubeconfig names; the error names the path.
std::expected<std::string, std::string> readFile(const std::string& path);

// A kubeconfig's current context as an endpoint: server, CA, client certificate or token (files
// named in it are read), by the same reader as the cluster client (kube::loadKubeconfig). For
// status and flare, the file `serve --write-kubeconfig` wrote; for doctor, the cluster's
// kubeconfig, whose credentials xmetrics accepts in cluster mode too.
std::expected<Endpoint, std::string> loadKubeconfig(const std::string& path);
// The same from a loaded config (in a pod: the service account's CA and token).
std::expected<Endpoint, std::string> endpointFromKubeConfig(const kube::KubeConfig& config);

// What status and flare are told: the kubeconfig `serve --write-kubeconfig` wrote and/or --server
// (which overrides its URL). The error names the file, or says to give one of the two.
std::expected<Endpoint, std::string> endpointFromFlags(const std::string& kubeconfig,
                                                       const std::string& server);

struct XmetricsReply {
  unsigned status = 0;
  std::string body;
  // The certificate chain the server presented, leaf first, PEM.
  std::vector<std::string> peerChainPem;
};

// GET `target` (e.g. /xmetrics/v1/status). Any HTTP status is a reply; the error is a transport or
// TLS failure, worded for users. Every step (connect, handshake, write, read) is bounded by
// `stepTimeout`, so a server that accepts and never answers cannot hang the command.
std::expected<XmetricsReply, std::string> xmetricsGet(
    const Endpoint& endpoint, const std::string& target,
    std::chrono::seconds stepTimeout = std::chrono::seconds(10));

// GET `target` for its 200 body; `token`, when given, replaces the endpoint's credentials. Any
// other status is an error carrying the Status message.
std::expected<std::string, std::string> httpsGet(const Endpoint& endpoint, const std::string& token,
                                                 const std::string& target);

// The `message` of a Kubernetes Status body, else the body itself (trimmed to 300 characters).
std::string replyMessage(const XmetricsReply& reply);

// The chain the server at `server` presents for SNI `serverName`, leaf first, PEM, without
// verifying it and without sending anything else: a TLS handshake only, so no credential can reach
// a server that turns out not to be trusted.
std::expected<std::vector<std::string>, std::string> fetchServingChain(
    const std::string& server, const std::string& serverName,
    std::chrono::seconds timeout = std::chrono::seconds(5));

}  // namespace xmetrics::client
