#pragma once

// Transitional: the HPA references moved to demand/hpa_references.hpp. cli/doctor_command.cpp
// still includes this name for labelSelectorText; delete this file once doctor/ includes
// kube/label_selector_text.hpp.
#include "kube/label_selector_text.hpp"
