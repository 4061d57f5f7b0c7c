#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.hpp"
#include "kube/informer.hpp"

namespace xmetrics::demand {

// Every External metric the current autoscaling/v2 HPAs name, as catalog references
// (owner "hpa:<ns>/<name>"). An HPA whose selector cannot be read contributes nothing and is
// reported in `problems` ("hpa:ns/name: metric m: <why>").
std::vector<catalog::Catalog::Reference> hpaReferences(
    const kube::ObjectMap& hpas, std::vector<std::string>* problems = nullptr);

}  // namespace xmetrics::demand
