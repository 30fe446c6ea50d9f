// Kernel UAPI enum values (enum bpf_prog_type, bpf_map_type, bpf_attach_type, bpf_link_type,
// bpf_func_id as of linux 6.18), with the short lower-case names bpftool prints. Kept by hand: a
// newer kernel only appends, and test/bpf/constants.test.ts checks every entry against the
// running kernel's BTF.

export const PROG_TYPES = [
  'unspec', // 0
  'socket_filter', // 1
  'kprobe', // 2
  'sched_cls', // 3
  'sched_act', // 4
  'tracepoint', // 5
  'xdp', // 6
  'perf_event', // 7
  'cgroup_skb', // 8
  'cgroup_sock', // 9
  'lwt_in', // 10
  'lwt_out', // 11
  'lwt_xmit', // 12
  'sock_ops', // 13
  'sk_skb', // 14
  'cgroup_device', // 15
  'sk_msg', // 16
  'raw_tracepoint', // 17
  'cgroup_sock_addr', // 18
  'lwt_seg6local', // 19
  'lirc_mode2', // 20
  'sk_reuseport', // 21
  'flow_dissector', // 22
  'cgroup_sysctl', // 23
  'raw_tracepoint_writable', // 24
  'cgroup_sockopt', // 25
  'tracing', // 26
  'struct_ops', // 27
  'ext', // 28
  'lsm', // 29
  'sk_lookup', // 30
  'syscall', // 31
  'netfilter', // 32
] as const;

export const MAP_TYPES = [
  'unspec', // 0
  'hash', // 1
  'array', // 2
  'prog_array', // 3
  'perf_event_array', // 4
  'percpu_hash', // 5
  'percpu_array', // 6
  'stack_trace', // 7
  'cgroup_array', // 8
  'lru_hash', // 9
  'lru_percpu_hash', // 10
  'lpm_trie', // 11
  'array_of_maps', // 12
  'hash_of_maps', // 13
  'devmap', // 14
  'sockmap', // 15
  'cpumap', // 16
  'xskmap', // 17
  'sockhash', // 18
  'cgroup_storage', // 19
  'reuseport_sockarray', // 20
  'percpu_cgroup_storage', // 21
  'queue', // 22
  'stack', // 23
  'sk_storage', // 24
  'devmap_hash', // 25
  'struct_ops', // 26
  'ringbuf', // 27
  'inode_storage', // 28
  'task_storage', // 29
  'bloom_filter', // 30
  'user_ringbuf', // 31
  'cgrp_storage', // 32
  'arena', // 33
] as const;

export const ATTACH_TYPES = [
  'cgroup_inet_ingress', // 0
  'cgroup_inet_egress', // 1
  'cgroup_inet_sock_create', // 2
  'cgroup_sock_ops', // 3
  'sk_skb_stream_parser', // 4
  'sk_skb_stream_verdict', // 5
  'cgroup_device', // 6
  'sk_msg_verdict', // 7
  'cgroup_inet4_bind', // 8
  'cgroup_inet6_bind', // 9
  'cgroup_inet4_connect', // 10
  'cgroup_inet6_connect', // 11
  'cgroup_inet4_post_bind', // 12
  'cgroup_inet6_post_bind', // 13
  'cgroup_udp4_sendmsg', // 14
  'cgroup_udp6_sendmsg', // 15
  'lirc_mode2', // 16
  'flow_dissector', // 17
  'cgroup_sysctl', // 18
  'cgroup_udp4_recvmsg', // 19
  'cgroup_udp6_recvmsg', // 20
  'cgroup_getsockopt', // 21
  'cgroup_setsockopt', // 22
  'trace_raw_tp', // 23
  'trace_fentry', // 24
  'trace_fexit', // 25
  'modify_return', // 26
  'lsm_mac', // 27
  'trace_iter', // 28
  'cgroup_inet4_getpeername', // 29
  'cgroup_inet6_getpeername', // 30
  'cgroup_inet4_getsockname', // 31
  'cgroup_inet6_getsockname', // 32
  'xdp_devmap', // 33
  'cgroup_inet_sock_release', // 34
  'xdp_cpumap', // 35
  'sk_lookup', // 36
  'xdp', // 37
  'sk_skb_verdict', // 38
  'sk_reuseport_select', // 39
  'sk_reuseport_select_or_migrate', // 40
  'perf_event', // 41
  'trace_kprobe_multi', // 42
  'lsm_cgroup', // 43
  'struct_ops', // 44
  'netfilter', // 45
  'tcx_ingress', // 46
  'tcx_egress', // 47
  'trace_uprobe_multi', // 48
  'cgroup_unix_connect', // 49
  'cgroup_unix_sendmsg', // 50
  'cgroup_unix_recvmsg', // 51
  'cgroup_unix_getpeername', // 52
  'cgroup_unix_getsockname', // 53
  'netkit_primary', // 54
  'netkit_peer', // 55
  'trace_kprobe_session', // 56
  'trace_uprobe_session', // 57
  'attach_type', // 58
] as const;

export const LINK_TYPES = [
  'unspec', // 0
  'raw_tracepoint', // 1
  'tracing', // 2
  'cgroup', // 3
  'iter', // 4
  'netns', // 5
  'xdp', // 6
  'perf_event', // 7
  'kprobe_multi', // 8
  'struct_ops', // 9
  'netfilter', // 10
  'tcx', // 11
  'uprobe_multi', // 12
  'netkit', // 13
  'sockmap', // 14
] as const;

export type ProgType = (typeof PROG_TYPES)[number];
export type MapType = (typeof MAP_TYPES)[number];
export type AttachType = (typeof ATTACH_TYPES)[number];
export type LinkType = (typeof LINK_TYPES)[number];

function lookup<T extends readonly string[]>(table: T, what: string) {
  return {
    name(n: number): T[number] | `${string}(${number})` {
      return (table[n] ?? `unknown_${what}(${n})`) as T[number];
    },
    value(name: T[number] | string): number {
      const i = table.indexOf(name.toLowerCase());
      if (i < 0) throw new Error(`unknown ${what} "${name}"`);
      return i;
    },
  };
}

export const progType = lookup(PROG_TYPES, 'program type');
export const mapType = lookup(MAP_TYPES, 'map type');
export const attachType = lookup(ATTACH_TYPES, 'attach type');
export const linkType = lookup(LINK_TYPES, 'link type');

/** Helper function ids (enum bpf_func_id), for feature probing. */
export const HELPER_NAMES: readonly string[] = [
  'unspec', // 0
  'map_lookup_elem', // 1
  'map_update_elem', // 2
  'map_delete_elem', // 3
  'probe_read', // 4
  'ktime_get_ns', // 5
  'trace_printk', // 6
  'get_prandom_u32', // 7
  'get_smp_processor_id', // 8
  'skb_store_bytes', // 9
  'l3_csum_replace', // 10
  'l4_csum_replace', // 11
  'tail_call', // 12
  'clone_redirect', // 13
  'get_current_pid_tgid', // 14
  'get_current_uid_gid', // 15
  'get_current_comm', // 16
  'get_cgroup_classid', // 17
  'skb_vlan_push', // 18
  'skb_vlan_pop', // 19
  'skb_get_tunnel_key', // 20
  'skb_set_tunnel_key', // 21
  'perf_event_read', // 22
  'redirect', // 23
  'get_route_realm', // 24
  'perf_event_output', // 25
  'skb_load_bytes', // 26
  'get_stackid', // 27
  'csum_diff', // 28
  'skb_get_tunnel_opt', // 29
  'skb_set_tunnel_opt', // 30
  'skb_change_proto', // 31
  'skb_change_type', // 32
  'skb_under_cgroup', // 33
  'get_hash_recalc', // 34
  'get_current_task', // 35
  'probe_write_user', // 36
  'current_task_under_cgroup', // 37
  'skb_change_tail', // 38
  'skb_pull_data', // 39
  'csum_update', // 40
  'set_hash_invalid', // 41
  'get_numa_node_id', // 42
  'skb_change_head', // 43
  'xdp_adjust_head', // 44
  'probe_read_str', // 45
  'get_socket_cookie', // 46
  'get_socket_uid', // 47
  'set_hash', // 48
  'setsockopt', // 49
  'skb_adjust_room', // 50
  'redirect_map', // 51
  'sk_redirect_map', // 52
  'sock_map_update', // 53
  'xdp_adjust_meta', // 54
  'perf_event_read_value', // 55
  'perf_prog_read_value', // 56
  'getsockopt', // 57
  'override_return', // 58
  'sock_ops_cb_flags_set', // 59
  'msg_redirect_map', // 60
  'msg_apply_bytes', // 61
  'msg_cork_bytes', // 62
  'msg_pull_data', // 63
  'bind', // 64
  'xdp_adjust_tail', // 65
  'skb_get_xfrm_state', // 66
  'get_stack', // 67
  'skb_load_bytes_relative', // 68
  'fib_lookup', // 69
  'sock_hash_update', // 70
  'msg_redirect_hash', // 71
  'sk_redirect_hash', // 72
  'lwt_push_encap', // 73
  'lwt_seg6_store_bytes', // 74
  'lwt_seg6_adjust_srh', // 75
  'lwt_seg6_action', // 76
  'rc_repeat', // 77
  'rc_keydown', // 78
  'skb_cgroup_id', // 79
  'get_current_cgroup_id', // 80
  'get_local_storage', // 81
  'sk_select_reuseport', // 82
  'skb_ancestor_cgroup_id', // 83
  'sk_lookup_tcp', // 84
  'sk_lookup_udp', // 85
  'sk_release', // 86
  'map_push_elem', // 87
  'map_pop_elem', // 88
  'map_peek_elem', // 89
  'msg_push_data', // 90
  'msg_pop_data', // 91
  'rc_pointer_rel', // 92
  'spin_lock', // 93
  'spin_unlock', // 94
  'sk_fullsock', // 95
  'tcp_sock', // 96
  'skb_ecn_set_ce', // 97
  'get_listener_sock', // 98
  'skc_lookup_tcp', // 99
  'tcp_check_syncookie', // 100
  'sysctl_get_name', // 101
  'sysctl_get_current_value', // 102
  'sysctl_get_new_value', // 103
  'sysctl_set_new_value', // 104
  'strtol', // 105
  'strtoul', // 106
  'sk_storage_get', // 107
  'sk_storage_delete', // 108
  'send_signal', // 109
  'tcp_gen_syncookie', // 110
  'skb_output', // 111
  'probe_read_user', // 112
  'probe_read_kernel', // 113
  'probe_read_user_str', // 114
  'probe_read_kernel_str', // 115
  'tcp_send_ack', // 116
  'send_signal_thread', // 117
  'jiffies64', // 118
  'read_branch_records', // 119
  'get_ns_current_pid_tgid', // 120
  'xdp_output', // 121
  'get_netns_cookie', // 122
  'get_current_ancestor_cgroup_id', // 123
  'sk_assign', // 124
  'ktime_get_boot_ns', // 125
  'seq_printf', // 126
  'seq_write', // 127
  'sk_cgroup_id', // 128
  'sk_ancestor_cgroup_id', // 129
  'ringbuf_output', // 130
  'ringbuf_reserve', // 131
  'ringbuf_submit', // 132
  'ringbuf_discard', // 133
  'ringbuf_query', // 134
  'csum_level', // 135
  'skc_to_tcp6_sock', // 136
  'skc_to_tcp_sock', // 137
  'skc_to_tcp_timewait_sock', // 138
  'skc_to_tcp_request_sock', // 139
  'skc_to_udp6_sock', // 140
  'get_task_stack', // 141
  'load_hdr_opt', // 142
  'store_hdr_opt', // 143
  'reserve_hdr_opt', // 144
  'inode_storage_get', // 145
  'inode_storage_delete', // 146
  'd_path', // 147
  'copy_from_user', // 148
  'snprintf_btf', // 149
  'seq_printf_btf', // 150
  'skb_cgroup_classid', // 151
  'redirect_neigh', // 152
  'per_cpu_ptr', // 153
  'this_cpu_ptr', // 154
  'redirect_peer', // 155
  'task_storage_get', // 156
  'task_storage_delete', // 157
  'get_current_task_btf', // 158
  'bprm_opts_set', // 159
  'ktime_get_coarse_ns', // 160
  'ima_inode_hash', // 161
  'sock_from_file', // 162
  'check_mtu', // 163
  'for_each_map_elem', // 164
  'snprintf', // 165
  'sys_bpf', // 166
  'btf_find_by_name_kind', // 167
  'sys_close', // 168
  'timer_init', // 169
  'timer_set_callback', // 170
  'timer_start', // 171
  'timer_cancel', // 172
  'get_func_ip', // 173
  'get_attach_cookie', // 174
  'task_pt_regs', // 175
  'get_branch_snapshot', // 176
  'trace_vprintk', // 177
  'skc_to_unix_sock', // 178
  'kallsyms_lookup_name', // 179
  'find_vma', // 180
  'loop', // 181
  'strncmp', // 182
  'get_func_arg', // 183
  'get_func_ret', // 184
  'get_func_arg_cnt', // 185
  'get_retval', // 186
  'set_retval', // 187
  'xdp_get_buff_len', // 188
  'xdp_load_bytes', // 189
  'xdp_store_bytes', // 190
  'copy_from_user_task', // 191
  'skb_set_tstamp', // 192
  'ima_file_hash', // 193
  'kptr_xchg', // 194
  'map_lookup_percpu_elem', // 195
  'skc_to_mptcp_sock', // 196
  'dynptr_from_mem', // 197
  'ringbuf_reserve_dynptr', // 198
  'ringbuf_submit_dynptr', // 199
  'ringbuf_discard_dynptr', // 200
  'dynptr_read', // 201
  'dynptr_write', // 202
  'dynptr_data', // 203
  'tcp_raw_gen_syncookie_ipv4', // 204
  'tcp_raw_gen_syncookie_ipv6', // 205
  'tcp_raw_check_syncookie_ipv4', // 206
  'tcp_raw_check_syncookie_ipv6', // 207
  'ktime_get_tai_ns', // 208
  'user_ringbuf_drain', // 209
  'cgrp_storage_get', // 210
  'cgrp_storage_delete', // 211
];
