#pragma once

#include <string>

namespace xmetrics::core {

// Renders a value as a Kubernetes resource.Quantity in canonical DecimalSI form, exactly as
// k8s.io/apimachinery/pkg/api/resource writes it: an integer mantissa (no fraction digits) with the
// largest decimal suffix (n u m "" k M G T P E) that loses no precision: 1.5 -> "1500m",
// 2000 -> "2k", 0.0015 -> "1500u", -2.5 -> "-2500m", 0 -> "0".
// The double is first turned into its shortest round-trip decimal form; magnitudes below 1n are
// rounded up to 1n as apimachinery rounds on parse. NaN and infinities have no Quantity form and
// must be rejected before calling (they return "0").
std::string formatQuantity(double value);

}  // namespace xmetrics::core
