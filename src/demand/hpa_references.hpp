#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.hpp"
#include "core/status_report.hpp"
#include "kube/informer.hpp"

namespace xmetrics::demand {

// Every External metric the current autoscaling/v2 HPAs name, as catalog references
// (owner "hpa:<ns>/<name>"). An HPA whose selector cannot be read contributes nothing and is
// reported in `problems` ("hpa:ns/name: metric m: <why>").
std::vector<catalog::Catalog::Reference> hpaReferences(
    const kube::ObjectMap& hpas, std::vector<std::string>* problems = nullptr);

// The HPAs with External metrics as the status report lists them (targets, replicas, the values
// the HPA last read), by namespace/name. A metric whose selector cannot be read is left out.
std::vector<core::StatusReport::Hpa> hpaSummaries(const kube::ObjectMap& hpas);

}  // namespace xmetrics::demand
