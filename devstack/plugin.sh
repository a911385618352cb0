#!/bin/bash
# devstack plugin for arm-cpu-filter: install the package, wire ArmCpuModelFilter and
# ArmCpuWeigher into nova.conf, start the host agent on computes, and on aarch64 optionally
# switch computes to cpu_mode=custom.

function install_arm_cpu_filter {
    setup_develop "$ARM_CPU_FILTER_DIR"
}

function _arm_cpu_filter_append_list {
    # $1 section, $2 option, $3 value to append to a comma-separated list option
    local current
    current=$(iniget "$NOVA_CONF" "$1" "$2")
    if [[ ",$current," != *",$3,"* ]]; then
        iniset "$NOVA_CONF" "$1" "$2" "${current:+$current,}$3"
    fi
}

function configure_arm_cpu_filter {
    local store_dir available
    # available_filters is repeatable: keep what is there (Nova's all_filters when nothing is)
    # and add ours once, so running post-config again changes nothing
    available=$(iniget_multiline "$NOVA_CONF" filter_scheduler available_filters)
    if [[ -z "$available" ]]; then
        iniset "$NOVA_CONF" filter_scheduler available_filters nova.scheduler.filters.all_filters
    fi
    if [[ " $available " != *" arm_cpu_filter.scheduler.filters.ArmCpuModelFilter "* ]]; then
        iniadd "$NOVA_CONF" filter_scheduler available_filters arm_cpu_filter.scheduler.filters.ArmCpuModelFilter
    fi
    _arm_cpu_filter_append_list filter_scheduler enabled_filters ArmCpuModelFilter
    if [[ -z "$(iniget "$NOVA_CONF" filter_scheduler weight_classes)" ]]; then
        iniset "$NOVA_CONF" filter_scheduler weight_classes nova.scheduler.weights.all_weighers
    fi
    _arm_cpu_filter_append_list filter_scheduler weight_classes arm_cpu_filter.scheduler.weighers.ArmCpuWeigher

    iniset "$NOVA_CONF" arm_cpu_filter store_url "$ARM_CPU_FILTER_STORE_URL"
    iniset "$NOVA_CONF" arm_cpu_filter max_snapshot_age "$ARM_CPU_FILTER_MAX_SNAPSHOT_AGE"
    iniset "$NOVA_CONF" arm_cpu_filter agent_interval "$ARM_CPU_FILTER_AGENT_INTERVAL"
    iniset "$NOVA_CONF" arm_cpu_filter libvirt_uri "qemu:///system"
    iniset "$NOVA_CONF" arm_cpu_filter provider_config_file "$ARM_CPU_FILTER_PROVIDER_CONFIG_DIR/arm-cpu-filter.yaml"
    iniset "$NOVA_CONF" compute provider_config_location "$ARM_CPU_FILTER_PROVIDER_CONFIG_DIR/"

    if [[ "$ARM_CPU_FILTER_STORE_URL" == file://* ]]; then
        store_dir=${ARM_CPU_FILTER_STORE_URL#file://}
        sudo install -d -m 0750 -o "$STACK_USER" "$store_dir"
    fi
    sudo install -d -m 0755 -o "$STACK_USER" "$ARM_CPU_FILTER_PROVIDER_CONFIG_DIR"
    # the agent runs as $STACK_USER, never root: it needs /dev/kvm through the kvm group and
    # libvirt's read-only socket, nothing more (docs/agent-privileges.rst)
    if getent group kvm >/dev/null; then
        sudo usermod -a -G kvm "$STACK_USER"
    fi

    if [[ "$(uname -m)" == "aarch64" && "$ARM_CPU_FILTER_CUSTOM_MODE" == "True" ]]; then
        iniset "$NOVA_CPU_CONF" libvirt cpu_mode custom
    fi
}

function _arm_cpu_filter_host {
    local host
    host=$(iniget "$NOVA_CONF" DEFAULT host)
    echo "${host:-$(hostname)}"
}

function first_round_arm_cpu_filter_agent {
    # before nova-compute starts, so it finds the provider config (it reads it at start-up);
    # fails harmlessly where there is no arm64 KVM.  sg: this shell predates the kvm membership
    sg kvm -c "$(which arm-cpu-filter) agent --once --config-file $NOVA_CONF --host $(_arm_cpu_filter_host)" || true
}

function start_arm_cpu_filter_agent {
    # as $STACK_USER with group kvm (run_process's third argument): not root
    run_process arm-cpu-filter-agent "$(which arm-cpu-filter) agent --config-file $NOVA_CONF --host $(_arm_cpu_filter_host)" kvm
}

if is_service_enabled arm-cpu-filter-agent || is_service_enabled n-sch; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing arm-cpu-filter"
        install_arm_cpu_filter
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring arm-cpu-filter"
        configure_arm_cpu_filter
        if is_service_enabled arm-cpu-filter-agent && is_service_enabled n-cpu; then
            first_round_arm_cpu_filter_agent
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        if is_service_enabled arm-cpu-filter-agent && is_service_enabled n-cpu; then
            echo_summary "Starting the arm-cpu-filter agent"
            start_arm_cpu_filter_agent
        fi
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_process arm-cpu-filter-agent
    fi
fi
