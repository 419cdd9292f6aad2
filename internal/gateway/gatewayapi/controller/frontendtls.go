package controller

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// configMapInformer watches ConfigMaps, for the CA bundles of
// BackendTLSPolicies' and Gateways' spec.tls.frontend caCertificateRefs
// (gatewayapi Input.ConfigMaps), and sets c.configMaps to read them from
// its cache. Without list on configmaps it returns nil and every ref
// resolves to nothing (its conditions say so): an informer that can never
// sync would hold every other sync back.
func (c *Controller) configMapInformer(ctx context.Context) cache.SharedIndexInformer {
	c.configMaps = func(string, string) *corev1.ConfigMap { return nil }
	core := c.opts.Client.Core
	if _, err := core.ConfigMaps("").List(ctx, metav1.ListOptions{Limit: 1}); apierrors.IsForbidden(err) {
		c.log.Warn("gateway API: CA bundles of ConfigMaps off until the gateway restarts with list/watch on configmaps granted", slog.String("error", err.Error()))
		return nil
	}
	inf := kubeshared.NewInformer(&corev1.ConfigMap{}, c.opts.Client, core.ConfigMaps("").List, core.ConfigMaps("").Watch)
	_ = inf.SetTransform(stripConfigMap)
	l := listerscorev1.NewConfigMapLister(inf.GetIndexer())
	c.configMaps = func(ns, name string) *corev1.ConfigMap { m, _ := l.ConfigMaps(ns).Get(name); return m }
	return inf
}

// stripConfigMap keeps of a ConfigMap what the CA references read: its
// ca.crt key. The informer watches every ConfigMap of the cluster; the
// rest of their data (up to 1 MiB each), annotations and managed fields
// would all be held in memory for nothing.
func stripConfigMap(obj any) (any, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return obj, nil
	}
	out := &corev1.ConfigMap{TypeMeta: cm.TypeMeta, ObjectMeta: metav1.ObjectMeta{Namespace: cm.Namespace, Name: cm.Name,
		UID: cm.UID, ResourceVersion: cm.ResourceVersion, Generation: cm.Generation, CreationTimestamp: cm.CreationTimestamp,
		DeletionTimestamp: cm.DeletionTimestamp}}
	if v, ok := cm.Data[gatewayapi.CACertKey]; ok {
		out.Data = map[string]string{gatewayapi.CACertKey: v}
	}
	if v, ok := cm.BinaryData[gatewayapi.CACertKey]; ok {
		out.BinaryData = map[string][]byte{gatewayapi.CACertKey: v}
	}
	return out, nil
}

// tlsPorts are the translation's tls.ports with their CA files in the
// secret directory.
func (c *Controller) tlsPorts(ports []config.TLSPort) []config.TLSPort {
	out := slices.Clone(ports)
	for i := range out {
		if a := out[i].ClientAuth; a != nil {
			ca := *a
			if !filepath.IsAbs(ca.CAFile) {
				ca.CAFile = filepath.Join(c.opts.SecretDir, filepath.FromSlash(ca.CAFile))
			}
			out[i].ClientAuth = &ca
		}
	}
	return out
}
