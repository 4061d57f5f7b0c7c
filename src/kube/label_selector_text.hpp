#pragma once

#include <boost/json/object.hpp>
#include <expected>
#include <string>

namespace xmetrics::kube {

// A metav1.LabelSelector (matchLabels + matchExpressions; null = none) in the text form
// core::LabelSelector parses: `app=web,tier in (a,b)`. The error says which part is unusable.
// Part of the client: it decodes a Kubernetes API type, for the HPA watch and for doctor alike.
std::expected<std::string, std::string> labelSelectorText(const boost::json::object* selector);

}  // namespace xmetrics::kube
