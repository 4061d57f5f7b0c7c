#pragma once

#include <boost/json/object.hpp>
#include <expected>
#include <string>
#include <vector>

#include "catalog/catalog.hpp"
#include "kube/informer.hpp"

namespace xmetrics::kube {

// A metav1.LabelSelector (matchLabels + matchExpressions; null = none) in the text form
// core::LabelSelector parses: `app=web,tier in (a,b)`. The error says which part is unusable.
std::expected<std::string, std::string> labelSelectorText(const boost::json::object* selector);

// Every External metric the current autoscaling/v2 HPAs name, as catalog references
// (owner "hpa:<ns>/<name>"). An HPA whose selector cannot be read contributes nothing and is
// reported in `problems` ("hpa:ns/name: metric m: <why>").
std::vector<catalog::Catalog::Reference> hpaReferences(
    const ObjectMap& hpas, std::vector<std::string>* problems = nullptr);

}  // namespace xmetrics::kube
