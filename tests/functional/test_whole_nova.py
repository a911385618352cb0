"""The plugin inside a whole Nova: servers are created, moved and refused through Nova's REST API,
with Nova's conductor, scheduler and five fake aarch64 computes, and Placement's own app with its
database.  The plugin is switched on only by ``nova.conf`` options (``self.flags``: the filter,
the weigher, ``[arm_cpu_filter]``, and each compute's ``[compute] provider_config_location``
holding the YAML the host agent wrote).  Nothing of Nova or Placement is mocked; the one addition
is a fake virt driver that reports aarch64 instead of x86_64.

The computes publish bundled samples (format 2, with the synthetic kvm facts of
``testing.vmfacts``) into a ``file://`` store through the agent's own round:

- ``g2-a``, ``g2-b``: Graviton2 on Linux 6.12 (identical twins);
- ``g2-73``: Graviton2 on Linux 7.3 (realizes graviton2-v1 and altra-v1; a VM started on 6.12
  cannot live-migrate to it: the 7.3 register list lacks TCR2_EL1);
- ``altra``: Ampere Altra on Linux 7.3 (realizes altra-v1 only);
- ``a64fx``: A64FX (realizes a64fx-v1 only).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import fixtures
from nova.tests.functional import integrated_helpers
from nova.tests.functional.api import client
from nova.virt import fake

from arm_cpu_filter.agent import run_once
from arm_cpu_filter.agent.provider_config import trait_name
from arm_cpu_filter.cli.commands.flavor import flavor_properties
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.scheduler import state, weighers
from arm_cpu_filter.store import open_store
from arm_cpu_filter.testing.vmfacts import with_kernel_facts

HOSTS = {"g2-a": "graviton2", "g2-b": "graviton2", "g2-73": "graviton2-7.3", "altra": "altra-7.3", "a64fx": "a64fx"}
SNAPSHOTS = {host: with_kernel_facts(sample_host(sample)) for host, sample in HOSTS.items()}
MAX_AGE = 600


class Aarch64FakeDriver(fake.MediumFakeDriver):
    """Nova's medium fake driver (8 GiB, 10 vCPUs, live migration) reporting aarch64 KVM."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self.host_status_base["supported_instances"] = [("aarch64", "kvm", "hvm")]


class WholeNovaTestCase(integrated_helpers.ProviderUsageBaseTestCase):
    # Nova prefixes compute_driver with "nova.virt.": the driver is put into nova.virt.fake
    compute_driver = "fake.Aarch64FakeDriver"

    def setUp(self):
        self.useFixture(fixtures.MockPatch("nova.virt.fake.Aarch64FakeDriver", Aarch64FakeDriver, create=True))
        self.workdir = Path(self.useFixture(fixtures.TempDir()).path)
        # each test starts a new Nova: forget the plugin's process-wide fleet, requests and scores
        for reset in (state.reset, weighers.reset):
            reset()
            self.addCleanup(reset)
        self.store_url = f"file://{self.workdir}/store"
        # the operator's nova.conf, before super().setUp() starts the API and the scheduler
        self.flags(api_paste_config=os.path.join(sys.prefix, "etc", "nova", "api-paste.ini"), group="wsgi")
        self.flags(available_filters=["nova.scheduler.filters.all_filters",
                                      "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter"],
                   enabled_filters=["ComputeFilter", "ImagePropertiesFilter", "ArmCpuModelFilter"],
                   weight_classes=["nova.scheduler.weights.all_weighers",
                                   "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher"],
                   group="filter_scheduler")
        self.flags(store_url=self.store_url, max_snapshot_age=MAX_AGE, store_refresh_interval=0,
                   group="arm_cpu_filter")
        super().setUp()
        self.store = open_store(self.store_url)
        for host, snapshot in SNAPSHOTS.items():
            # the agent's round on that compute: publish, write the provider config nova-compute reads
            config_dir = self.workdir / "provider_config" / host
            run_once(self.store, snapshot, host, provider_config=str(config_dir / "arm-cpu-filter.yaml"))
            self.flags(provider_config_location=str(config_dir), group="compute")
            self._start_compute(host)
        self.image_id = self.glance.create(None, {
            "name": "aarch64-guest", "container_format": "bare", "disk_format": "qcow2",
            "min_ram": 0, "min_disk": 0, "visibility": "public",
            "properties": {"hw_architecture": "aarch64"}})["id"]
        self.flavors: dict[str, str] = {}

    def _clear_attrs(self):
        # pytest's unittest runner deletes the test-method attribute itself after the test
        name = self._testMethodName
        method = self.__dict__.get(name)
        super()._clear_attrs()
        if method is not None:
            self.__dict__[name] = method

    # -- helpers ---------------------------------------------------------------------------

    def flavor(self, spec: str | None, memory_mb: int = 2048, trait: bool = False) -> str:
        """A flavor asking for ``spec`` (MODEL[,PROP=VAL]; None: host-passthrough), with the
        properties ``arm-cpu-filter flavor`` prints (the trait only if ``trait``)."""
        key = f"{spec}/{memory_mb}/{trait}"
        if key not in self.flavors:
            props = flavor_properties(spec) if spec else {}
            if not trait:
                props = {k: v for k, v in props.items() if not k.startswith("trait:")}
            name = f"f{len(self.flavors)}"
            self.flavors[key] = self._create_flavor(name=name, memory_mb=memory_mb, vcpu=1, disk=1, ephemeral=0,
                                                    extra_spec=props or None)
        return self.flavors[key]

    def boot(self, spec: str | None = None, host: str | None = None, expected: str = "ACTIVE",
             memory_mb: int = 2048, trait: bool = False) -> dict:
        return self._create_server(image_uuid=self.image_id, flavor_id=self.flavor(spec, memory_mb, trait),
                                   networks="none", host=host, expected_state=expected)

    def boot_many(self, count: int, spec: str | None = None) -> set[str]:
        """The hosts of ``count`` servers asked for at once (one scheduling request each; their
        builds overlap, which keeps the wall time down)."""
        body = self._build_server(image_uuid=self.image_id, flavor_id=self.flavor(spec), networks="none")
        posted = [self.api.post_server({"server": dict(body, name=f"{body['name']}-{i}")}) for i in range(count)]
        return {self.host_of(self._wait_for_state_change(server, "ACTIVE")) for server in posted}

    def fill(self, host: str) -> None:
        """Use most of ``host``'s RAM, so Nova's RAM weigher prefers every other host."""
        self.boot(host=host, memory_mb=4096)

    @staticmethod
    def host_of(server: dict) -> str:
        return server["OS-EXT-SRV-ATTR:host"]

    def filter_results(self) -> str:
        return next((line for line in self.stdlog.logger.output.splitlines() if "Filter results" in line), "")


class TestApi(WholeNovaTestCase):
    def test_the_api_refuses_bad_arm_cpu_extra_specs_with_400(self):
        flavor_id = self.flavor(None)
        for key, value, why in [("arm_cpu:model", "gravitn2-v1", "is not one of"),
                                ("arm_cpu:feat_AES", "fast", "invalid value 'fast'"),
                                ("arm_cpu:feat_AESX", "on", "unknown property 'feat_AESX'"),
                                ("arm_cpu:mode", "host-model", "is not one of")]:
            with self.subTest(key=key):
                exc = self.assertRaises(client.OpenStackApiException, self.admin_api.post_extra_spec,
                                        flavor_id, {"extra_specs": {key: value}})
                self.assertEqual(400, exc.response.status_code)
                self.assertIn(why, exc.response.text)
        # the properties the flavor command prints are accepted as they are
        props = flavor_properties("graviton2-v1,hw_prop_DIC=off")
        self.admin_api.post_extra_spec(flavor_id, {"extra_specs": props})
        self.assertEqual(props, self.admin_api.api_get(f"/flavors/{flavor_id}/os-extra_specs").body["extra_specs"])


class TestBoots(WholeNovaTestCase):
    def test_named_model_boots_land_only_on_hosts_that_realize_it(self):
        self.assertLessEqual(self.boot_many(4, "graviton2-v1"), {"g2-a", "g2-b", "g2-73"})
        self.assertEqual("altra", self.host_of(self.boot("altra-v1,hw_prop_DIC=off")))  # g2-73's DIC is on
        self.assertEqual("a64fx", self.host_of(self.boot("a64fx-v1")))

    def test_host_passthrough_boots_land_only_on_hosts_with_fresh_data(self):
        self.store.withdraw("a64fx", "taken out of service")
        self.store.publish(SNAPSHOTS["altra"], host="altra", taken_at=time.time() - 2 * MAX_AGE)
        hosts = self.boot_many(6)
        self.assertLessEqual(hosts, {"g2-a", "g2-b", "g2-73"})
        self.assertGreater(len(hosts), 1)

    def test_no_valid_host_names_the_filter_in_novas_filter_results(self):
        server = self.boot("grace-v1", expected="ERROR")  # no host here realizes Grace
        self.assertIn("No valid host", server["fault"]["message"])
        self.assertIn("'ArmCpuModelFilter: (start: 5, end: 0)'", self.filter_results())
        self.assertIn("'ImagePropertiesFilter: (start: 5, end: 5)'", self.filter_results())

    def test_a_host_whose_data_goes_stale_mid_run_is_refused(self):
        self.assertEqual("a64fx", self.host_of(self.boot("a64fx-v1")))
        self.store.publish(SNAPSHOTS["a64fx"], host="a64fx", taken_at=time.time() - 2 * MAX_AGE)
        server = self.boot("a64fx-v1", expected="ERROR")
        self.assertIn("No valid host", server["fault"]["message"])
        self.assertIn("'ArmCpuModelFilter: (start: 5, end: 0)'", self.filter_results())
        self.assertIn("host a64fx fails closed", self.stdlog.logger.output)
        self.store.publish(SNAPSHOTS["a64fx"], host="a64fx")  # the agent's next round
        self.assertEqual("a64fx", self.host_of(self.boot("a64fx-v1")))

    def test_the_weigher_changes_the_choice(self):
        # altra-v1: altra (realizes 1 model) and g2-73 (2 models); Nova's RAM weigher prefers
        # g2-73 once altra is half full, the plugin's tightest-fit weigher prefers altra
        self.fill("altra")
        self.flags(model_fit_weight_multiplier=10.0, group="arm_cpu_filter")
        self.assertEqual("altra", self.host_of(self.boot("altra-v1")))
        self.flags(model_fit_weight_multiplier=0.0, group="arm_cpu_filter")
        self.assertEqual("g2-73", self.host_of(self.boot("altra-v1")))


class TestMoves(WholeNovaTestCase):
    def test_live_migration_without_a_host_lands_on_an_admitted_host(self):
        # only the filter decides: the plugin's move weigher is off, and Nova's RAM weigher
        # prefers the three empty hosts over g2-b, the one destination the plugin admits
        self.flags(move_identical_weight_multiplier=0.0, group="arm_cpu_filter")
        server = self.boot(host="g2-a")
        self.fill("g2-b")
        server = self._live_migrate(server)
        self.assertEqual("g2-b", self.host_of(server))

    def test_live_migration_to_a_refused_host_fails_cleanly(self):
        server = self.boot(host="g2-a")
        for target in ("altra", "g2-73"):  # DIC differs; the 7.3 kernel lacks TCR2_EL1
            with self.subTest(target=target):
                server = self._live_migrate(server, migration_expected_state="error", host=target)
                self.assertEqual(("ACTIVE", "g2-a", None),
                                 (server["status"], self.host_of(server), server["OS-EXT-STS:task_state"]))
        self.assertIn("'ArmCpuModelFilter: (start: 1, end: 0)'", self.filter_results())

    def test_cold_migration_lands_on_an_admitted_host(self):
        server = self.boot("graviton2-v1", host="g2-a")
        self.fill("g2-b")
        server = self._migrate_server(server)
        self.assertIn(self.host_of(server), {"g2-b", "g2-73"})  # not the empty altra or a64fx
        self._confirm_resize(server)

    def test_resize_keeps_the_model_and_lands_on_an_admitted_host(self):
        server = self.boot("altra-v1", host="altra")
        self.api.post_server_action(server["id"], {"resize": {"flavorRef": self.flavor("altra-v1", 3072)}})
        server = self._wait_for_state_change(server, "VERIFY_RESIZE")
        self.assertEqual("g2-73", self.host_of(server))  # the only other host realizing altra-v1
        self._confirm_resize(server)

    def test_evacuation_lands_on_an_admitted_host(self):
        server = self.boot("graviton2-v1", host="g2-a")
        self.fill("g2-b")
        self.computes["g2-a"].stop()
        service = self.admin_api.get_services(host="g2-a", binary="nova-compute")[0]
        self.admin_api.put_service_force_down(service["id"], True)
        server = self._evacuate_server(server)  # since 2.95 an evacuated server arrives stopped
        self.assertIn(self.host_of(server), {"g2-b", "g2-73"})


class TestTraits(WholeNovaTestCase):
    def test_the_agents_provider_config_puts_model_traits_in_placement(self):
        for host in HOSTS:
            with self.subTest(host=host):
                traits = set(self._get_provider_traits(self._get_provider_uuid_by_host(host)))
                ours = {t for t in traits if t.startswith("CUSTOM_ARM_CPU_MODEL_")}
                expected = {"g2-a": {"graviton2-v1"}, "g2-b": {"graviton2-v1"}, "g2-73": {"altra-v1", "graviton2-v1"},
                            "altra": {"altra-v1"}, "a64fx": {"a64fx-v1"}}[host]
                self.assertEqual({trait_name(m) for m in expected}, ours)

    def test_a_required_trait_makes_placement_prefilter(self):
        self.assertEqual("a64fx", self.host_of(self.boot("a64fx-v1", trait=True)))
        self.store.publish(SNAPSHOTS["a64fx"], host="a64fx", taken_at=time.time() - 2 * MAX_AGE)
        self.boot("a64fx-v1", trait=True, expected="ERROR")
        # placement returned the one host carrying the trait; the filter still checks it
        self.assertIn("'ArmCpuModelFilter: (start: 1, end: 0)'", self.filter_results())

