# The config.yml that `relaypro install-config` writes when a package is installed without the
# AIR_* inputs: etc/config.example.yml (every field, commented) without its example console, so
# the service does not start against a console that is not the operator's. Embedded in the
# binary as generated/relaypro_config_template.h.
set(_example ${CMAKE_SOURCE_DIR}/etc/config.example.yml)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_example})
file(READ ${_example} _text)
string(REPLACE "consoleAddress: \"console.example.com\"" "consoleAddress: \"\"" _text "${_text}")
string(REPLACE "\norganizationId: 1\n" "\n# organizationId: 1\n" _text "${_text}")
string(FIND "${_text}" "consoleAddress: \"\"" _a)
string(FIND "${_text}" "\n# organizationId: 1\n" _b)
if(_a EQUAL -1 OR _b EQUAL -1)
  message(FATAL_ERROR "etc/config.example.yml no longer has the consoleAddress and organizationId lines the template replaces")
endif()
set(_head "# RelayPro configuration, written at installation without the AIR_* inputs.\n#\n# Next step: set consoleAddress, organizationId and deploymentToken below (or install the\n# package again with AIR_CONSOLE_ADDRESS, AIR_ORGANIZATION_ID and AIR_DEPLOYMENT_TOKEN set), then\n# `systemctl start binalyze-air-relaypro`.\n#\n")
file(WRITE ${RELAYPRO_GENERATED_DIR}/relaypro_config_template.h.new
  "// Generated from etc/config.example.yml by cmake/ConfigTemplate.cmake.\n#pragma once\n\nnamespace relaypro {\ninline constexpr const char kConfigTemplate[] = R\"RPTEMPLATE(${_head}${_text})RPTEMPLATE\";\n}  // namespace relaypro\n")
file(COPY_FILE ${RELAYPRO_GENERATED_DIR}/relaypro_config_template.h.new ${RELAYPRO_GENERATED_DIR}/relaypro_config_template.h ONLY_IF_DIFFERENT)
file(REMOVE ${RELAYPRO_GENERATED_DIR}/relaypro_config_template.h.new)
